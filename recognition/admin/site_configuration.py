"""The site-wide settings row."""

from django.contrib import admin
from django.http import HttpResponseRedirect
from django.urls import reverse

from recognition.models import SiteConfiguration


@admin.register(SiteConfiguration)
class SiteConfigurationAdmin(admin.ModelAdmin):
    """One row: the list page goes straight to it (created with the defaults on first visit)."""

    fields = ("auto_approve_second_choice", "updated_at")
    readonly_fields = ("updated_at",)

    def changelist_view(self, request, extra_context=None):
        config, _ = SiteConfiguration.objects.get_or_create(pk=SiteConfiguration.SINGLETON_PK)
        return HttpResponseRedirect(reverse("admin:recognition_siteconfiguration_change", args=[config.pk]))

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
