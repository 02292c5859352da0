"""A retraining run: approved corrections + replayed EMNIST -> a gated candidate ModelVersion.

The only place that turns Correction rows into ``ml.finetune`` inputs and its model into a
ModelVersion. Steps, each written to the run's log:

1. Take the lock: a TrainingRun row in status "running". The database allows one such row
   (partial unique index), so two beat processes or a manual run during a scheduled one get
   ``RetrainingBusy`` instead of a second run. A row left "running" by a killed worker is
   declared abandoned after RETRAIN_LOCK_TIMEOUT_SECONDS.
2. Collect approved corrections. Every RETRAIN_HOLDOUT_EVERY-th by id is held back (never
   trained on, fixed for ever); the rest not yet learned by a promoted version are "new".
   Fewer new ones than RETRAIN_MIN_NEW_CORRECTIONS: the run ends "skipped", nothing written.
3. Fine-tune the active version (``ml.finetune``), evaluate candidate and active version on
   the fixed validation split and on the held-back corrections, apply the gates.
4. Write the file under MODEL_DIR, register the ModelVersion (active if it passed, rejected
   with the reason if not), mark the corrections it learned.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from ml.data import SPLITS, class_index, discover, load_emnist
from ml.evaluate import evaluate_probs, predict_probs
from recognition.errors import InvalidState, RecognitionError
from recognition.images import input28_array
from recognition.labels import corrections_split_by_label
from recognition.models import Correction, ModelVersion, TrainingRun
from recognition.selectors import model_version_get_active
from recognition.services.model_versions import (
    model_file_check,
    model_version_activate_loaded,
    model_version_path,
    model_version_record_load,
)

logger = logging.getLogger(__name__)


class RetrainingBusy(RecognitionError):
    code = "retraining_running"
    status_code = 409


class _RunLog(io.StringIO):
    """The run's log: kept for the TrainingRun row, echoed to the process log."""

    def write(self, text: str) -> int:
        if text.strip():
            logger.info("retraining: %s", text.rstrip())
        return super().write(text)

    def line(self, text: str) -> None:
        self.write(f"{timezone.now():%H:%M:%S} {text}\n")


def correction_is_held_back(correction_id: int) -> bool:
    """Held-back corrections measure the gate and are never trained on. Fixed by id."""
    return correction_id % settings.RETRAIN_HOLDOUT_EVERY == 0


# --------------------------------------------------------------------------- the lock


def _run_start(reason: str) -> TrainingRun:
    now = timezone.now()
    stale = now - timedelta(seconds=settings.RETRAIN_LOCK_TIMEOUT_SECONDS)
    TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING, started_at__lt=stale).update(
        status=TrainingRun.Status.FAILED,
        finished_at=now,
        error=f"Abandoned: still 'running' after {settings.RETRAIN_LOCK_TIMEOUT_SECONDS} s (worker killed?).",
    )
    try:
        with transaction.atomic():
            return TrainingRun.objects.create(reason=reason, status=TrainingRun.Status.RUNNING, started_at=now)
    except IntegrityError:
        running = TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING).first()
        since = f" (run {running.id}, started {running.started_at:%Y-%m-%d %H:%M:%S})" if running else ""
        raise RetrainingBusy(f"A retraining run is already running{since}; try again when it has finished.") from None


def _run_finish(
    run: TrainingRun, log: _RunLog, *, status: str, result=None, summary=None, error: str = ""
) -> TrainingRun:
    run.status = status
    run.finished_at = timezone.now()
    run.duration_seconds = round((run.finished_at - run.started_at).total_seconds(), 2)
    run.log = log.getvalue()[-100_000:]
    run.result = result
    run.summary = summary or {}
    run.error = error[:5000]
    run.save(update_fields=["status", "finished_at", "duration_seconds", "log", "result", "summary", "error"])
    return run


# --------------------------------------------------------------------------- data

_replay_cache: dict = {}  # splits -> ((data dir, files, mtimes), EmnistData)
_replay_lock = threading.Lock()


def replay_data_get(*, all_splits: bool = False):
    """The training rows to replay and the fixed validation split, read once per process.

    ``all_splits=False``: the ByClass file only (its exact-label rows are the replay).
    ``all_splits=True``: every EMNIST file, the mix the shipped model was trained on
    (``FinetuneConfig.replay == "all"``). Either way the validation split is carved from
    ByClass exactly as ``ml.train`` does.
    """
    splits = SPLITS if all_splits else ("byclass",)
    data_dir = Path(settings.EMNIST_DATA_DIR)
    key = (str(data_dir), tuple((s.name, s.path.stat().st_mtime) for s in discover(data_dir) if s.split in splits))
    with _replay_lock:
        cached = _replay_cache.get(splits)
        if cached is None or cached[0] != key:
            _replay_cache.clear()  # one data set in memory at a time
            cached = _replay_cache[splits] = (key, load_emnist(data_dir, splits=splits))
        return cached[1]


def _correction_arrays(corrections: list[Correction]) -> tuple[np.ndarray, np.ndarray]:
    images = np.stack([input28_array(c.submission.input28) for c in corrections])
    labels = np.array([class_index(c.label) for c in corrections], dtype=np.int64)
    return images, labels


def _accuracy(probs: np.ndarray, labels: np.ndarray) -> float | None:
    return float((probs.argmax(axis=1) == labels).mean()) if len(labels) else None


# --------------------------------------------------------------------------- the run


def retraining_run(*, reason: str = TrainingRun.Reason.MANUAL) -> TrainingRun:
    """Run one retraining and return its TrainingRun (status succeeded, skipped or failed).

    Raises:
        RetrainingBusy: another run holds the lock; nothing was recorded.
    """
    if reason not in TrainingRun.Reason.values:
        reason = TrainingRun.Reason.MANUAL
    run = _run_start(reason)
    log = _RunLog()
    written: list[Path] = []
    try:
        return _retrain(run, log, written)
    except Exception as exc:
        # A failed run leaves no half-written version: the file goes, the row is never created.
        for path in written:
            path.unlink(missing_ok=True)
        log.line(f"failed: {type(exc).__name__}: {exc}")
        logger.exception("retraining run %s failed", run.id)
        return _run_finish(run, log, status=TrainingRun.Status.FAILED, error=f"{type(exc).__name__}: {exc}")


def _retrain(run: TrainingRun, log: _RunLog, written: list[Path]) -> TrainingRun:
    started = time.perf_counter()
    active = model_version_get_active()
    if active is None:
        log.line("no active model version: nothing to fine-tune")
        return _run_finish(run, log, status=TrainingRun.Status.FAILED, error="No active model version.")

    approved = list(
        Correction.objects.filter(status=Correction.Status.APPROVED)
        .select_related("submission")
        .only("id", "label", "learned_by_id", "submission__input28")
        .order_by("id")
    )
    # A label outside the 62 classes (from before the database refused them) is skipped and
    # reported, not trained on: one such row must not fail every run until someone edits it.
    approved, invalid = corrections_split_by_label(approved)
    held_back = [c for c in approved if correction_is_held_back(c.id)]
    new = [c for c in approved if not correction_is_held_back(c.id) and c.learned_by_id is None]
    summary = {
        "active_version": active.name,
        "approved": len(approved),
        "new_corrections": len(new),
        "held_back_corrections": len(held_back),
        "min_new_corrections": settings.RETRAIN_MIN_NEW_CORRECTIONS,
    }
    if invalid:
        summary["skipped_invalid_labels"] = [{"id": c.id, "label": c.label} for c in invalid]
        log.line(
            f"skipped {len(invalid)} approved correction(s) whose label is not one of the 62 classes: "
            + ", ".join(f"{c.id} ({c.label!r})" for c in invalid)
        )
    log.line(f"{len(approved)} approved corrections: {len(new)} new, {len(held_back)} held back; active {active.name}")
    if len(new) < settings.RETRAIN_MIN_NEW_CORRECTIONS:
        message = f"Nothing to do: {len(new)} new approved correction(s), at least {settings.RETRAIN_MIN_NEW_CORRECTIONS} needed."
        log.line(message)
        summary["message"] = message
        return _run_finish(run, log, status=TrainingRun.Status.SKIPPED, summary=summary)

    # TensorFlow only from here on: a skipped run costs no start-up.
    from ml.finetune import FinetuneConfig, finetune
    from ml.model import load_model

    config = FinetuneConfig(**settings.RETRAIN_FINETUNE)
    data = replay_data_get(all_splits=config.replay == "all")
    log.line(
        f"replay data ({config.replay}): {len(data.train_images)} training rows, validation {len(data.val_labels)} rows"
    )
    images, labels = _correction_arrays(new)
    held_images, held_labels = (
        _correction_arrays(held_back) if held_back else (np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64))
    )

    parent_model = load_model(model_version_path(active))
    result = finetune(parent_model, images, labels, data, config, log_stream=log)

    def score(model) -> tuple[dict, float | None]:
        val = evaluate_probs(predict_probs(model, data.val_images), data.val_labels)
        held = _accuracy(predict_probs(model, held_images), held_labels) if len(held_labels) else None
        return val, held

    active_val, active_held = score(parent_model)
    cand_val, cand_held = score(result.model)
    gates = _gates(active_val["top1"], cand_val["top1"], active_held, cand_held, len(held_labels))
    log.line(
        f"validation top-1 {active_val['top1']:.4f} -> {cand_val['top1']:.4f}; held-back "
        f"{_fmt(active_held)} -> {_fmt(cand_held)} ({len(held_labels)}); gates {'passed' if gates['passed'] else 'FAILED'}"
    )

    name = f"retrained-{timezone.now():%Y%m%d-%H%M%S}-run{run.id}"
    model_dir = Path(settings.MODEL_DIR)
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / f"{name}.keras"
    partial = model_dir / f".{name}.partial.keras"
    written += [partial, path]
    result.model.save(partial)
    os.replace(partial, path)  # a reader sees no file or the whole file

    metrics = {
        "validation": cand_val,
        "held_back": {"top1": cand_held, "n": len(held_labels)},
        "parent_at_evaluation": {"validation_top1": active_val["top1"], "held_back_top1": active_held},
    }
    training_summary = {
        "source": "retraining",
        "run": run.id,
        "parent": active.name,
        "corrections": len(new),
        "correction_ids": [c.id for c in new],
        "held_back_ids": [c.id for c in held_back],
        "finetune": result.summary,
    }
    if gates["passed"]:
        # Load the candidate outside the transaction: it takes seconds, and the transaction
        # holds the active version's row lock. A file that does not load fails the run (the
        # file goes, no version is registered).
        load_error = model_file_check(path)
        if load_error:
            raise InvalidState(f"{name}: its model file does not load ({load_error}); it cannot be made active.")
    with transaction.atomic():
        # The active version may have been rolled back or replaced during the run: locked, so
        # that no promotion commits between this check and ours.
        still_active = (
            ModelVersion.objects.select_for_update().filter(pk=active.pk, status=ModelVersion.Status.ACTIVE).exists()
        )
        if gates["passed"] and not still_active:
            gates = {
                **gates,
                "passed": False,
                "reason": f"{active.name} stopped being active during the run; its candidate is not promoted.",
            }
        version = ModelVersion.objects.create(
            name=name,
            file_path=str(path),
            parent=active,
            status=ModelVersion.Status.CANDIDATE if gates["passed"] else ModelVersion.Status.REJECTED,
            metrics=metrics,
            training_summary=training_summary,
            gate_results=gates,
        )
        if gates["passed"]:
            model_version_record_load(model_version=version, error="")
            version = model_version_activate_loaded(model_version=version)
            Correction.objects.filter(id__in=[c.id for c in new]).update(learned_by=version)
        summary.update(
            version=version.name,
            promoted=gates["passed"],
            gates=gates,
            validation_top1={"before": active_val["top1"], "after": cand_val["top1"]},
            held_back_top1={"before": active_held, "after": cand_held},
            seconds=round(time.perf_counter() - started, 2),
        )
        log.line(f"{version.name}: {'promoted to active' if gates['passed'] else 'rejected: ' + gates['reason']}")
        return _run_finish(run, log, status=TrainingRun.Status.SUCCEEDED, result=version, summary=summary)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _gates(active_val: float, cand_val: float, active_held: float | None, cand_held: float | None, n_held: int) -> dict:
    """Both gates, with the figures that decided them and one reason line for the admin."""
    max_drop = settings.RETRAIN_MAX_VAL_DROP
    drop = active_val - cand_val
    # 1e-9: equal accuracies computed in float must not fail a zero-margin gate.
    val_ok = drop <= max_drop + 1e-9
    if n_held:
        held_ok = cand_held >= active_held - 1e-9
        held_note = f"held-back accuracy {cand_held:.4f} vs active {active_held:.4f} on {n_held}"
    else:
        held_ok = True
        held_note = "no held-back corrections yet: gate not applicable"
    reasons = []
    if not val_ok:
        reasons.append(f"validation top-1 dropped {drop * 100:.2f} points (more than {max_drop * 100:.2f} allowed)")
    if not held_ok:
        reasons.append(
            f"held-back corrections accuracy {cand_held:.4f} is lower than the active version's {active_held:.4f}"
        )
    return {
        "passed": val_ok and held_ok,
        "reason": "; ".join(reasons) or "passed",
        "validation": {
            "passed": val_ok,
            "active": active_val,
            "candidate": cand_val,
            "drop": drop,
            "max_drop": max_drop,
        },
        "held_back": {"passed": held_ok, "active": active_held, "candidate": cand_held, "n": n_held, "note": held_note},
    }
