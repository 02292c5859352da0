from django.apps import AppConfig


class RecognitionConfig(AppConfig):
    name = "recognition"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Registers recognition.housekeeping's task in every process (Celery's autodiscovery
        # imports only tasks.py).
        # A writer's stored adaptation goes with any of their memory's entries, however deleted.
        from django.db.models.signals import post_delete

        from recognition import housekeeping  # noqa: F401
        from recognition.models import WriterMemoryEntry
        from recognition.services.writer_memory import writer_adaptation_forget

        post_delete.connect(writer_adaptation_forget, sender=WriterMemoryEntry, dispatch_uid="writer_adaptation_forget")
