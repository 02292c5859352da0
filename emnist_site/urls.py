from django.contrib import admin
from django.urls import include, path

from recognition.metrics import metrics_view

urlpatterns = [
    path("", include("frontend.urls")),
    path("api/v1/", include("recognition.api.urls")),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),  # Prometheus; staff or METRICS_TOKEN only
]

# JSON for API clients (and 503 for a database outage) instead of Django's HTML 500 page.
handler500 = "recognition.api.errors.server_error"
handler404 = "recognition.api.errors.not_found"
handler400 = "recognition.api.errors.bad_request"
