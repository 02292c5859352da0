from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("frontend.urls")),
    path("api/v1/", include("recognition.urls")),
    path("admin/", admin.site.urls),
]
