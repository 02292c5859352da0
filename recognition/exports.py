"""The approved corrections as a dataset people can take away: ``.npz`` and a zip of PNGs + CSV.

Images are the 28x28 arrays the model saw, in EMNIST orientation (transposed: ``img.T`` is
upright), so the ``.npz`` loads with ``ml.data.read_npz`` beside the EMNIST files. The PNGs
are upright, for people. Reads only; no TensorFlow.
"""

import csv
import io
import logging
import zipfile

import numpy as np
from django.db.models import QuerySet
from PIL import Image

from ml.data import class_index
from recognition.images import input28_array
from recognition.labels import corrections_split_by_label
from recognition.models import Correction

logger = logging.getLogger(__name__)

CSV_FIELDS = ("file", "label", "label_index", "correction_id", "submission_id", "predicted_label", "reviewed_at")


def correction_list_approved(*, ids: list[int] | None = None) -> QuerySet[Correction]:
    qs = Correction.objects.filter(status=Correction.Status.APPROVED).select_related("submission").order_by("id")
    return qs.filter(id__in=ids) if ids is not None else qs


def corrections_exportable(corrections) -> tuple[list[Correction], list[Correction]]:
    """(the rows to export, the rows skipped). Skipped: a label outside the 62 classes, which
    the database refuses now but a row from before that constraint may hold; one such row must
    not make the whole export fail."""
    exportable, skipped = corrections_split_by_label(corrections)
    if skipped:
        logger.warning(
            "export skips %d correction(s) whose label is not a class: %s",
            len(skipped),
            ", ".join(f"{c.id} ({c.label!r})" for c in skipped),
        )
    return exportable, skipped


def _arrays(corrections: list[Correction]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images = np.zeros((len(corrections), 28, 28), dtype=np.uint8)
    for i, c in enumerate(corrections):
        images[i] = input28_array(c.submission.input28)
    labels = np.array([class_index(c.label) for c in corrections], dtype=np.uint8)
    chars = np.array([c.label for c in corrections], dtype="<U1")
    return images, labels, chars


def corrections_export_npz(corrections) -> bytes:
    """``images`` uint8 (N, 28, 28) EMNIST orientation, ``labels`` uint8 ByClass indices,
    ``label_chars`` <U1, ``correction_ids`` int64; ``skipped_correction_ids`` int64: approved
    rows left out because their label is not a class."""
    corrections, skipped = corrections_exportable(corrections)
    images, labels, chars = _arrays(corrections)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        images=images,
        labels=labels,
        label_chars=chars,
        correction_ids=np.array([c.id for c in corrections], dtype=np.int64),
        skipped_correction_ids=np.array([c.id for c in skipped], dtype=np.int64),
    )
    return buffer.getvalue()


def corrections_export_zip(corrections) -> bytes:
    """``labels.csv`` (one row per image) and ``images/<correction id>_<label index>.png`` (upright, white ink on black);
    ``skipped.csv`` lists approved rows left out because their label is not a class (only if there are any)."""
    corrections, skipped = corrections_exportable(corrections)
    images, labels, _ = _arrays(corrections)
    buffer = io.BytesIO()
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(CSV_FIELDS)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for c, image, label in zip(corrections, images, labels):
            # The label index, not the character, names the file: "a" and "A" must not collide
            # on case-insensitive file systems.
            name = f"images/{c.id}_{int(label)}.png"
            png = io.BytesIO()
            Image.fromarray(image.T, mode="L").save(png, format="PNG")
            archive.writestr(name, png.getvalue())
            writer.writerow(
                [
                    name,
                    c.label,
                    int(label),
                    c.id,
                    str(c.submission_id),
                    c.submission.predicted_label,
                    c.reviewed_at.isoformat() if c.reviewed_at else "",
                ]
            )
        archive.writestr("labels.csv", table.getvalue())
        if skipped:
            report = io.StringIO()
            skipped_writer = csv.writer(report)
            skipped_writer.writerow(("correction_id", "submission_id", "label", "reason"))
            for c in skipped:
                skipped_writer.writerow((c.id, str(c.submission_id), c.label, "not one of the 62 classes"))
            archive.writestr("skipped.csv", report.getvalue())
        archive.writestr(
            "README.txt",
            "Approved corrections. images/*.png are upright 28x28 (white ink on black); labels.csv maps each file to its "
            "label (0-9, A-Z, a-z) and its ByClass index (0-61).\n",
        )
    return buffer.getvalue()


def _padded(arrays: list[np.ndarray], dtype) -> np.ndarray:
    """(N, *largest shape) of ``arrays``, each zero-padded at the end of every axis."""
    shape = tuple(np.max([a.shape for a in arrays], axis=0)) if arrays else (0,)
    out = np.zeros((len(arrays), *shape), dtype=dtype)
    for row, array in zip(out, arrays):
        row[tuple(slice(0, n) for n in array.shape)] = array
    return out


def _adaptation_arrays(row) -> tuple[np.ndarray, np.ndarray]:
    """float16 (M, D) vectors and float32 (D + 1, C) correction of a ``WriterAdaptation`` row
    (a row of another shape than it says comes out as one flat row of each)."""
    vectors = np.frombuffer(bytes(row.vectors), dtype=np.float16)
    correction = np.frombuffer(bytes(row.correction), dtype=np.float32)
    count = len(bytes(row.labels))
    dims = vectors.size // count if count else 0
    if not dims or vectors.size != count * dims or correction.size % (dims + 1):
        return vectors[None], correction[None]
    return vectors.reshape(count, dims), correction.reshape(dims + 1, -1)


def writer_memory_export_npz(entries, adaptations=()) -> bytes:
    """A writer's own memory, for them to take away: ``images`` uint8 (N, 28, 28) EMNIST
    orientation (the corrected drawings as the model saw them), ``labels`` uint8 ByClass
    indices, ``label_chars`` <U1, ``vectors`` float16 (N, D) the stored embeddings (rows of a
    narrower model zero-padded; ``vector_lengths`` says how many are real), ``model_versions``
    int64, ``submission_ids`` <U36, ``created_at`` <U32 (ISO 8601).

    And what it was worked into (``WriterAdaptation``, one row per model version; K rows):
    ``adaptation_model_versions`` int64 (K,), ``adaptation_memory_counts`` int64 (K,),
    ``adaptation_hands`` float32 (K, 2) the writer's turn in degrees and width
    (``ml.writer_hand``), ``adaptation_vectors`` float16 (K, M, D) the memory's drawings read
    through the hand, ``adaptation_corrections`` float32 (K, D + 1, C) the last-layer
    correction fitted to them (``ml.writer_layer``); zero-padded like ``vectors``."""
    entries, adaptations = list(entries), list(adaptations)
    vectors = [np.frombuffer(bytes(e.vector), dtype=np.float16) for e in entries]
    padded = _padded(vectors, np.float16)
    worked = [_adaptation_arrays(a) for a in adaptations]
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        images=np.array([input28_array(e.submission.input28) for e in entries], dtype=np.uint8).reshape(-1, 28, 28),
        labels=np.array([class_index(e.label) for e in entries], dtype=np.uint8),
        label_chars=np.array([e.label for e in entries], dtype="<U1"),
        vectors=padded,
        vector_lengths=np.array([len(v) for v in vectors], dtype=np.int64),
        model_versions=np.array([e.model_version_id for e in entries], dtype=np.int64),
        submission_ids=np.array([str(e.submission_id) for e in entries], dtype="<U36"),
        created_at=np.array([e.created_at.isoformat() for e in entries], dtype="<U32"),
        adaptation_model_versions=np.array([a.model_version_id for a in adaptations], dtype=np.int64),
        adaptation_memory_counts=np.array([a.memory_count for a in adaptations], dtype=np.int64),
        adaptation_hands=np.array([(a.rotate, a.wide) for a in adaptations], dtype=np.float32).reshape(-1, 2),
        adaptation_vectors=_padded([v for v, _ in worked], np.float16),
        adaptation_corrections=_padded([c for _, c in worked], np.float32),
    )
    return buffer.getvalue()
