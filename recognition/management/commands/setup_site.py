from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from recognition.housekeeping import sessions_clear_schedule_ensure
from recognition.services import (
    model_version_register_shipped,
    retraining_schedule_ensure,
    submission_requeue_schedule_ensure,
)


class Command(BaseCommand):
    help = "Migrate the database and register the shipped model as the first active version, create the schedules (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--no-migrate", action="store_true", help="Skip `migrate`.")

    def handle(self, *args, no_migrate=False, **options):
        # A fresh clone has no var/: SQLite cannot create its file in a missing folder.
        for folder in (settings.DATA_DIR, settings.MODEL_DIR):
            folder.mkdir(parents=True, exist_ok=True)
        if not no_migrate:
            call_command("migrate", interactive=False, verbosity=options["verbosity"])
        version = model_version_register_shipped()
        if retraining_schedule_ensure():
            self.stdout.write("Created the nightly retraining schedule (edit it in the admin: Periodic tasks).")
        if submission_requeue_schedule_ensure():
            self.stdout.write("Created the re-queue sweep for pending predictions (admin: Periodic tasks).")
        if sessions_clear_schedule_ensure():
            self.stdout.write("Created the daily sweep of expired sessions (admin: Periodic tasks).")
        self.stdout.write(f"Model version: {version.name} ({version.status}) -> {version.file_path}")
