from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("frontend.urls")),
    path("api/v1/", include("recognition.api.urls")),
    path("admin/", admin.site.urls),
]

# JSON for API clients (and 503 for a database outage) instead of Django's HTML 500 page.
handler500 = "recognition.api.errors.server_error"
handler404 = "recognition.api.errors.not_found"
handler400 = "recognition.api.errors.bad_request"
