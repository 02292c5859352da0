"""Each writer's memory of their own corrected drawings, and reading a batch with it.

A correction copies the drawing's embedding (stored on the submission with its prediction)
into its writer's memory; the worker reads every writer of a batch's memory in one query and
moves each drawing's posterior by ``ml.prototypes.adapt``. The writer is whoever owns the
submission, decided as ownership of submissions is: the user, else the anonymous client id.

Entries whose vectors came from another model version than the serving one are ignored (not
recomputed): another model's penultimate layer is another space. They stay listed, so people
see and can forget them, and count against the bound until newer corrections push them out.
"""

from collections import defaultdict

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Q

from ml.data import class_index
from ml.prototypes import adapt
from recognition.models import Correction, ModelVersion, Submission, WriterMemoryEntry

EMBEDDING_DTYPE = np.float16  # 2 bytes a dimension: 512 bytes for the shipped model's 256


def embedding_bytes(embedding: np.ndarray) -> bytes:
    """A float32 (D,) embedding as stored (``Submission.embedding``, ``WriterMemoryEntry.vector``)."""
    return np.asarray(embedding, dtype=EMBEDDING_DTYPE).tobytes()


def embedding_array(data: bytes | memoryview) -> np.ndarray:
    """Stored bytes back as a float16 (D,) array."""
    return np.frombuffer(bytes(data), dtype=EMBEDDING_DTYPE)


def writer_key(row) -> tuple[int | None, str]:
    """(owner id, client id) of a submission or entry: the client id counts only without a user."""
    return (row.owner_id, "") if row.owner_id is not None else (None, row.client_id)


def writer_filter(*, owner_id: int | None, client_id: str) -> Q:
    """The rows of this writer, as ownership of submissions decides it."""
    if owner_id is not None:
        return Q(owner_id=owner_id)
    return Q(owner__isnull=True, client_id=client_id)


@transaction.atomic
def writer_memory_remember(*, submission: Submission, correction: Correction) -> WriterMemoryEntry | None:
    """Put ``submission`` under ``correction.label`` in its writer's memory (the same drawing
    corrected again changes its label), then drop the writer's oldest beyond
    WRITER_MEMORY_SIZE. None when the drawing has no embedding (not predicted, or predicted
    before the memory existed) or no writer (an anonymous row without a client id)."""
    owner_id, client_id = writer_key(submission)
    if not submission.embedding or submission.model_version_id is None or (owner_id is None and not client_id):
        return None
    entry, _ = WriterMemoryEntry.objects.update_or_create(
        submission=submission,
        defaults={
            "owner_id": owner_id,
            "client_id": client_id,
            "correction": correction,
            "label": correction.label,
            "vector": bytes(submission.embedding),
            "model_version_id": submission.model_version_id,
        },
    )
    mine = WriterMemoryEntry.objects.filter(writer_filter(owner_id=owner_id, client_id=client_id))
    stale = list(mine.order_by("-created_at", "-id").values_list("id", flat=True)[settings.WRITER_MEMORY_SIZE :])
    if stale:
        WriterMemoryEntry.objects.filter(id__in=stale).delete()
    return entry


def writer_memory_clear(*, owner_id: int | None, client_id: str) -> int:
    """Forget everything this writer taught; returns how many entries went."""
    if owner_id is None and not client_id:
        return 0
    deleted, _ = WriterMemoryEntry.objects.filter(writer_filter(owner_id=owner_id, client_id=client_id)).delete()
    return deleted


def writer_memory_forget(*, entry: WriterMemoryEntry) -> None:
    """Forget one drawing (the caller has checked it is the writer's own)."""
    entry.delete()


def writer_memories_for(rows: list[Submission], model_version: ModelVersion) -> dict[tuple, tuple]:
    """{writer key: (float16 (M, D) vectors, int64 (M,) class indices)} for every writer of
    ``rows`` with a memory from ``model_version``: one query for the whole batch."""
    owners = {row.owner_id for row in rows if row.owner_id is not None}
    clients = {row.client_id for row in rows if row.owner_id is None and row.client_id}
    if not owners and not clients:
        return {}
    entries = WriterMemoryEntry.objects.filter(
        Q(owner_id__in=owners) | Q(owner__isnull=True, client_id__in=clients), model_version=model_version
    ).values_list("owner_id", "client_id", "label", "vector")
    grouped = defaultdict(list)
    for owner_id, client_id, label, vector in entries:
        grouped[(owner_id, "") if owner_id is not None else (None, client_id)].append((label, bytes(vector)))
    memories = {}
    for key, items in grouped.items():
        vectors = np.frombuffer(b"".join(vector for _, vector in items), dtype=EMBEDDING_DTYPE)
        memories[key] = (vectors.reshape(len(items), -1), np.array([class_index(label) for label, _ in items]))
    return memories


def writer_memory_apply(
    rows: list[Submission], probs: np.ndarray, embeddings: np.ndarray, model_version: ModelVersion
) -> tuple[np.ndarray, np.ndarray]:
    """The batch's posteriors with each writer's memory: (float32 (N, 62), bool (N,) whether
    the memory changed the top answer). Rows of writers without a memory keep ``probs`` bit
    for bit; a drawing is only ever compared with its own writer's memory."""
    changed = np.zeros(len(rows), dtype=bool)
    memories = writer_memories_for(rows, model_version)
    if not memories:
        return probs, changed
    out = probs.copy()
    by_writer = defaultdict(list)
    for i, row in enumerate(rows):
        by_writer[writer_key(row)].append(i)
    for key, (vectors, labels) in memories.items():
        index = np.array(by_writer[key])
        if vectors.shape[1] != embeddings.shape[1]:
            continue  # written by a model of another shape under this version's id: unusable
        adapted, _ = adapt(probs[index], embeddings[index], vectors, labels)
        out[index] = adapted
        changed[index] = adapted.argmax(axis=1) != probs[index].argmax(axis=1)
    return out, changed
