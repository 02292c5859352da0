"""The API's routes, under /api/v1/ (emnist_site/urls.py); reversed as "api:<name>"."""

from django.urls import path
from drf_spectacular.views import SpectacularSwaggerView

from recognition.api import views, writer_memory

app_name = "api"


urlpatterns = [
    path("submissions", views.SubmissionCollectionApi.as_view(), name="submissions"),
    path("submissions/<str:submission_id>", views.SubmissionDetailApi.as_view(), name="submission-detail"),
    path(
        "submissions/<str:submission_id>/correction",
        views.SubmissionCorrectionApi.as_view(),
        name="submission-correction",
    ),
    path("words", views.WordCollectionApi.as_view(), name="words"),
    path("words/<str:word_id>", views.WordDetailApi.as_view(), name="word-detail"),
    path("corrections/export", views.CorrectionExportApi.as_view(), name="correction-export"),
    path("writer-memory", writer_memory.WriterMemoryApi.as_view(), name="writer-memory"),
    path("writer-memory/export", writer_memory.WriterMemoryExportApi.as_view(), name="writer-memory-export"),
    path("writer-memory/<str:entry_id>", writer_memory.WriterMemoryEntryApi.as_view(), name="writer-memory-entry"),
    path("labels", views.LabelListApi.as_view(), name="label-list"),
    path("model-versions", views.ModelVersionListApi.as_view(), name="model-version-list"),
    path("model-versions/<str:model_version_id>", views.ModelVersionDetailApi.as_view(), name="model-version-detail"),
    path("stats", views.StatsApi.as_view(), name="stats"),
    path("health", views.HealthApi.as_view(), name="health"),
    path("schema", views.SchemaApi.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]
