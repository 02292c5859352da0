"""Rows: fields, choices, constraints and small properties. Workflows live in services."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from recognition.labels import labels


class ModelVersion(models.Model):
    class Status(models.TextChoices):
        CANDIDATE = "candidate"
        ACTIVE = "active"
        RETIRED = "retired"
        REJECTED = "rejected"

    name = models.CharField(max_length=100, unique=True)
    # Relative paths are resolved against the repository root (the shipped model) or are
    # absolute (retrained models under MODEL_DIR).
    file_path = models.CharField(max_length=500)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CANDIDATE)
    metrics = models.JSONField(default=dict, blank=True)
    training_summary = models.JSONField(default=dict, blank=True)
    gate_results = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    # Why the file did not load, the last time a worker or a promotion tried ("" = it loaded).
    load_error = models.TextField(blank=True, default="")
    load_checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # The database, not the code, guarantees there is never more than one active model.
            models.UniqueConstraint(fields=["status"], condition=Q(status="active"), name="one_active_model_version"),
        ]

    def __str__(self):
        return f"{self.name} ({self.status})"

    @property
    def top1(self):
        return (self.metrics.get("validation") or {}).get("top1")


class Submission(models.Model):
    class Source(models.TextChoices):
        CANVAS = "canvas"
        UPLOAD = "upload"
        API = "api"

    class Status(models.TextChoices):
        PENDING = "pending"
        PREDICTED = "predicted"
        FAILED = "failed"

    class FailureReason(models.TextChoices):
        # No model could be loaded (none active, or its file broken): not the drawing's fault,
        # so the row is predicted again once a model loads (services.model_recovery).
        MODEL_UNAVAILABLE = "model_unavailable"

    # A random id: poll URLs must not let one visitor guess another's submissions.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    image = models.BinaryField()
    content_type = models.CharField(max_length=50)
    strokes = models.JSONField(null=True, blank=True)
    # The uint8 28x28 array the model sees (EMNIST orientation), 784 bytes.
    input28 = models.BinaryField()
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.API)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="submissions"
    )
    # Anonymous visitors are identified by a random id kept in their session.
    client_id = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    predicted_label = models.CharField(max_length=1, blank=True, default="")
    confidence = models.FloatField(null=True, blank=True)
    top_k = models.JSONField(default=list, blank=True)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="submissions"
    )
    latency_ms = models.FloatField(null=True, blank=True)
    # The drawing's embedding from model_version (the CNN's penultimate layer, L2-normalised,
    # float16 bytes), written with the prediction: a correction copies it into the writer's
    # memory without a model in the web process. Empty before prediction.
    embedding = models.BinaryField(blank=True, default=b"")
    # Whether the writer's memory (WriterMemoryEntry) changed the top answer.
    adapted = models.BooleanField(default=False)
    error = models.TextField(blank=True, default="")
    # Why a failed row failed, where that decides what happens to it next ("" = nothing to do).
    failure_reason = models.CharField(max_length=20, choices=FailureReason.choices, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    # A character of a word: its word and its place in it, from 0 (left). Null for a single character.
    word = models.ForeignKey("Word", null=True, blank=True, on_delete=models.CASCADE, related_name="characters")
    position = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    predicted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["word", "position"], condition=Q(word__isnull=False), name="one_character_per_word_position"
            ),
        ]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="submission_owner_recent"),
            models.Index(fields=["client_id", "-created_at"], name="submission_client_recent"),
            models.Index(fields=["status", "-created_at"], name="submission_status_recent"),
            models.Index(fields=["predicted_label"], name="submission_label"),
            models.Index(fields=["created_at"], name="submission_created"),
        ]

    def __str__(self):
        return f"{self.id} {self.status} {self.predicted_label}"


class Word(models.Model):
    """A drawing of several characters in a row. Each character is a Submission (``characters``),
    so predictions, corrections, review and retraining treat it as any single character."""

    Source = Submission.Source

    class Status(models.TextChoices):
        PENDING = "pending"
        PREDICTED = "predicted"
        FAILED = "failed"

    class Segmentation(models.TextChoices):
        STROKES = "strokes"
        COMPONENTS = "components"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    image = models.BinaryField()
    content_type = models.CharField(max_length=50)
    strokes = models.JSONField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.API)
    # How the drawing was split: by its strokes, or by the ink's connected components.
    segmentation = models.CharField(max_length=10, choices=Segmentation.choices)
    # Per character, in order: [x0, y0, x1, y1] in the drawing's pixels (end exclusive).
    boxes = models.JSONField(default=list)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="words"
    )
    client_id = models.CharField(max_length=64, blank=True, default="")
    # The best readings of the whole word in context (ml.word_context), best first, once every
    # character is predicted: [{"text": ..., "score": share of the probability, 0..1}, ...].
    readings = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="word_owner_recent"),
            models.Index(fields=["client_id", "-created_at"], name="word_client_recent"),
            models.Index(fields=["created_at"], name="word_created"),
        ]

    def __str__(self):
        return f"{self.id} {self.text!r}"

    def _characters(self) -> list:
        # Through the prefetch cache when there is one (lists, admin), else one query.
        return sorted(self.characters.all(), key=lambda c: c.position)

    @property
    def status(self) -> str:
        """Derived from the characters: pending while any is, failed if any failed."""
        statuses = {c.status for c in self._characters()}
        if Submission.Status.PENDING in statuses:
            return self.Status.PENDING
        if Submission.Status.FAILED in statuses:
            return self.Status.FAILED
        return self.Status.PREDICTED

    @property
    def text(self) -> str:
        """The predicted labels in order; "?" for a character not predicted (yet)."""
        return "".join(c.predicted_label or "?" for c in self._characters())


class Correction(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="corrections")
    # One of the 62 classes, here (forms, full_clean) and in the database (the check below): a
    # label outside them cannot be exported or trained on.
    label = models.CharField(max_length=1, choices=[(label, label) for label in labels()])
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="reviewed_corrections"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    # Set when no person reviewed it: the SiteConfiguration rule that approved it (reviewer empty).
    auto_rule = models.CharField(max_length=32, blank=True, default="")
    # The promoted version that was fine-tuned on this correction; a retraining run trains on
    # approved corrections that have none (held-back ones never get one).
    learned_by = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="learned_corrections"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["submission"], condition=Q(status="pending"), name="one_open_correction_per_submission"
            ),
            models.CheckConstraint(condition=Q(label__in=list(labels())), name="correction_label_is_a_class"),
        ]
        indexes = [models.Index(fields=["status", "-created_at"], name="correction_status_recent")]

    def __str__(self):
        return f"{self.submission_id} -> {self.label} ({self.status})"


class WriterMemoryEntry(models.Model):
    """One of a writer's own corrected drawings, as the model sees it: their next drawings are
    read with a correction fitted to it (recognition.services.writer_memory, ml.writer_layer).

    The writer is whoever owns the submission, as ownership of submissions is decided: the
    user, or (no user) the anonymous client id. One entry per submission; deleting the
    submission or its correction deletes the entry.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="memory_entries"
    )
    client_id = models.CharField(max_length=64, blank=True, default="")
    submission = models.OneToOneField(Submission, on_delete=models.CASCADE, related_name="memory_entry")
    correction = models.ForeignKey(Correction, on_delete=models.CASCADE, related_name="memory_entries")
    label = models.CharField(max_length=1, choices=[(label, label) for label in labels()])
    # float16 bytes of the L2-normalised embedding made by model_version; entries of another
    # version than the serving one are not used (their vectors are another model's).
    vector = models.BinaryField()
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="memory_entries")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(label__in=list(labels())), name="memory_label_is_a_class"),
        ]
        indexes = [
            models.Index(fields=["owner", "model_version", "created_at"], name="memory_owner_version"),
            models.Index(fields=["client_id", "model_version", "created_at"], name="memory_client_version"),
        ]

    def __str__(self):
        return f"{self.owner_id or self.client_id}: {self.label} ({self.submission_id})"


class WriterAdaptation(models.Model):
    """What a writer's memory was worked into for one model version, kept so that every worker
    process reads it instead of working it out again (recognition.services.writer_memory):
    their hand (ml.writer_hand), their memory's vectors read through it, and the last-layer
    correction fitted to those (ml.writer_layer). Derived from the entries it was made from,
    named by their count and newest id: a memory that changed since is worked out again.
    Forgetting the memory deletes it.
    """

    # "user:<id>" or "client:<client id>": one row per writer and model version.
    writer = models.CharField(max_length=80)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="writer_adaptations"
    )
    client_id = models.CharField(max_length=64, blank=True, default="")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="writer_adaptations")
    memory_count = models.PositiveIntegerField()
    memory_last = models.BigIntegerField()
    rotate = models.FloatField(default=0.0)
    wide = models.FloatField(default=1.0)
    # float16 (M, D) vectors and uint8 (M,) class indices the correction was fitted to, sorted
    # by class; float32 (D + 1, C) correction.
    vectors = models.BinaryField()
    labels = models.BinaryField()
    correction = models.BinaryField()
    created_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["writer", "model_version"], name="one_adaptation_per_writer_version"),
        ]

    def __str__(self):
        return f"{self.writer} v{self.model_version_id}: {self.memory_count} entries"


class TrainingRun(models.Model):
    class Reason(models.TextChoices):
        SCHEDULED = "scheduled"
        MANUAL = "manual"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        SKIPPED = "skipped"  # nothing to do: too few new approved corrections
        FAILED = "failed"

    reason = models.CharField(max_length=10, choices=Reason.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    log = models.TextField(blank=True, default="")
    # What the run used and decided: counts, gates, before/after accuracy (see services.retraining).
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    result = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # The retraining lock: at most one running run, whichever process started it.
            models.UniqueConstraint(fields=["status"], condition=Q(status="running"), name="one_running_training_run"),
        ]

    def __str__(self):
        return f"run {self.id} {self.reason} {self.status}"


class SiteConfiguration(models.Model):
    """Settings the admin edits at run time (one row, pk 1; no row means every default)."""

    class AutoRule(models.TextChoices):
        SECOND_CHOICE = "second_choice", "the model's second choice was the claimed label"

    SINGLETON_PK = 1

    auto_approve_second_choice = models.BooleanField(
        default=False,
        help_text=(
            "Approve a correction without review when the label it claims was the model's second "
            "choice for that image. Recorded on the correction as rule 'second_choice', reviewer empty."
        ),
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "site configuration"
        verbose_name_plural = "site configuration"
        constraints = [models.CheckConstraint(condition=Q(pk=1), name="site_configuration_singleton")]

    def __str__(self):
        return "Site configuration"

    def save(self, *args, **kwargs):
        self.pk = self.SINGLETON_PK  # always the one row
        super().save(*args, **kwargs)
