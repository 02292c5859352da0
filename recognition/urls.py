from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from recognition import apis

app_name = "api"

urlpatterns = [
    path("submissions", apis.SubmissionCollectionApi.as_view(), name="submissions"),
    path("submissions/<str:submission_id>", apis.SubmissionDetailApi.as_view(), name="submission-detail"),
    path("submissions/<str:submission_id>/correction", apis.SubmissionCorrectionApi.as_view(), name="submission-correction"),
    path("words", apis.WordCollectionApi.as_view(), name="words"),
    path("words/<str:word_id>", apis.WordDetailApi.as_view(), name="word-detail"),
    path("corrections/export", apis.CorrectionExportApi.as_view(), name="correction-export"),
    path("labels", apis.LabelListApi.as_view(), name="label-list"),
    path("model-versions", apis.ModelVersionListApi.as_view(), name="model-version-list"),
    path("model-versions/<str:model_version_id>", apis.ModelVersionDetailApi.as_view(), name="model-version-detail"),
    path("stats", apis.StatsApi.as_view(), name="stats"),
    path("health", apis.HealthApi.as_view(), name="health"),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]
