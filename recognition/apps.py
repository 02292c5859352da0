from django.apps import AppConfig


class RecognitionConfig(AppConfig):
    name = "recognition"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Registers recognition.housekeeping's task in every process (Celery's autodiscovery
        # imports only tasks.py).
        from recognition import housekeeping  # noqa: F401
