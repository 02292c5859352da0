"""Each writer's memory of their own corrected drawings: remembered, bounded, forgotten, read.

A correction copies the drawing's embedding (stored on the submission with its prediction)
into its writer's memory and queues the memory's working-out (``recognition.services.
writer_adaptation``: the writer's hand and their last-layer correction); the worker reads every
writer of a batch's memory in one query. The writer is whoever owns the submission, decided as
ownership of submissions is: the user, else the anonymous client id.

The worker keeps each writer's decoded memory while it stays unchanged (``_decoded``): one
small query per batch checks that, so a 500-entry memory is not read and decoded again for
every drawing, nor worked out again. Entries whose vectors came from another model version
than the serving one are ignored (not recomputed): another model's penultimate layer is
another space. They stay listed, so people see and can forget them, and count against the
bound until newer corrections push them out.
"""

import logging
from collections import OrderedDict, defaultdict
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q

from ml.data import class_index
from ml.prototypes import memory_arrays
from recognition.models import Correction, ModelVersion, Submission, WriterAdaptation, WriterMemoryEntry
from recognition.services.queueing import WRITER_MEMORY_PREPARE, task_send

logger = logging.getLogger(__name__)

# Batches up to this size go image by image through the single-image path (the worker's first
# read, and a hand's second one).
SINGLE_PATH_MAX = 3
EMBEDDING_DTYPE = np.float16  # 2 bytes a dimension: 512 bytes for the shipped model's 256


def embedding_bytes(embedding: np.ndarray) -> bytes:
    """A float32 (D,) embedding as stored (``Submission.embedding``, ``WriterMemoryEntry.vector``)."""
    return np.asarray(embedding, dtype=EMBEDDING_DTYPE).tobytes()


def embedding_array(data: bytes | memoryview) -> np.ndarray:
    """Stored bytes back as a float16 (D,) array."""
    return np.frombuffer(bytes(data), dtype=EMBEDDING_DTYPE)


def writer_key(row) -> tuple[int | None, str]:
    """(owner id, client id) of a submission or entry: the client id counts only without a user."""
    return writer_of(row.owner_id, row.client_id)


def writer_filter(*, owner_id: int | None, client_id: str) -> Q:
    """The rows of this writer, as ownership of submissions decides it."""
    if owner_id is not None:
        return Q(owner_id=owner_id)
    return Q(owner__isnull=True, client_id=client_id)


@transaction.atomic
def writer_memory_remember(*, submission: Submission, correction: Correction) -> WriterMemoryEntry | None:
    """Put ``submission`` under ``correction.label`` in its writer's memory (the same drawing
    corrected to another label replaces its entry by a new one: entries never change, see
    ``_decoded``), then drop the writer's oldest beyond WRITER_MEMORY_SIZE. None when the
    drawing has no embedding (not predicted, or predicted before the memory existed) or no
    writer (an anonymous row without a client id)."""
    owner_id, client_id = writer_key(submission)
    if not submission.embedding or submission.model_version_id is None or (owner_id is None and not client_id):
        return None
    entry = WriterMemoryEntry.objects.filter(submission=submission).first()
    if entry is not None and entry.label == correction.label and entry.correction_id == correction.id:
        return entry
    if entry is not None:
        with _adaptation_deleted(owner_id, client_id):
            entry.delete()
    entry = WriterMemoryEntry.objects.create(
        submission=submission,
        owner_id=owner_id,
        client_id=client_id,
        correction=correction,
        label=correction.label,
        vector=bytes(submission.embedding),
        model_version_id=submission.model_version_id,
    )
    mine = WriterMemoryEntry.objects.filter(writer_filter(owner_id=owner_id, client_id=client_id))
    stale = list(mine.order_by("-created_at", "-id").values_list("id", flat=True)[settings.WRITER_MEMORY_SIZE :])
    if stale:
        with _adaptation_deleted(owner_id, client_id):
            WriterMemoryEntry.objects.filter(id__in=stale).delete()
    transaction.on_commit(lambda: _queue_prepare(owner_id, client_id))
    return entry


def _queue_prepare(owner_id: int | None, client_id: str) -> None:
    """Have a worker work the changed memory out now (``writer_memory_prepare``), not on the
    writer's next drawing. Best effort: with the broker down, that drawing's batch does it."""
    try:
        task_send(WRITER_MEMORY_PREPARE, args=[owner_id, client_id], queue="inference")
    except Exception as exc:  # noqa: BLE001 - any broker failure: the next batch works it out
        logger.warning("could not queue the writer memory's preparation: %s", exc)


def writer_memory_clear(*, owner_id: int | None, client_id: str) -> int:
    """Forget everything this writer taught; returns how many entries went."""
    if owner_id is None and not client_id:
        return 0
    with transaction.atomic(), _adaptation_deleted(owner_id, client_id):
        deleted, _ = WriterMemoryEntry.objects.filter(writer_filter(owner_id=owner_id, client_id=client_id)).delete()
    return deleted


def writer_memory_forget(*, entry: WriterMemoryEntry) -> None:
    """Forget one drawing (the caller has checked it is the writer's own); what the memory was
    worked into goes with it (``writer_adaptation_forget``), and a worker works the rest out again."""
    owner_id, client_id = writer_key(entry)
    with transaction.atomic(), _adaptation_deleted(owner_id, client_id):
        entry.delete()
    transaction.on_commit(lambda: _queue_prepare(owner_id, client_id))


# The writer whose stored adaptation the running service path has deleted already.
_adaptation_gone: ContextVar[tuple | None] = ContextVar("writer_adaptation_gone", default=None)


@contextmanager
def _adaptation_deleted(owner_id: int | None, client_id: str):
    """Delete the writer's stored adaptation once, after the entries the block deletes; the
    ``post_delete`` receiver skips them (clearing 500 entries: one DELETE, not 500). Callers
    run it inside a transaction, so the deletes land together."""
    token = _adaptation_gone.set(writer_of(owner_id, client_id))
    try:
        yield
    finally:
        _adaptation_gone.reset(token)
    WriterAdaptation.objects.filter(writer_filter(owner_id=owner_id, client_id=client_id)).delete()


def writer_adaptation_forget(sender, instance: WriterMemoryEntry, **kwargs) -> None:
    """``post_delete`` of a memory entry deleted by a cascade (its correction or submission
    deleted, in the admin or a failed word): what the writer's memory was worked into held it,
    so it goes too (recognition.apps connects this). The service paths (forget, clear, the
    bound) delete it themselves, once (``_adaptation_deleted``)."""
    owner_id, client_id = writer_key(instance)
    if _adaptation_gone.get() == (owner_id, client_id):
        return
    WriterAdaptation.objects.filter(writer_filter(owner_id=owner_id, client_id=client_id)).delete()


# Decoded memories of this process: {(writer key, version id): ((count, last id), vectors, labels)}.
# Entries never change once written (a relabel writes a new one), so a writer's (count, last
# id) says whether the copy here is still theirs. Bounded: the least recently used go first.
_decoded: OrderedDict = OrderedDict()
DECODED_WRITERS = 256


def memory_stamp(key: tuple, version_id: int) -> tuple[int, int] | None:
    """(count, newest id) of the writer's memory as this process last decoded it
    (``writer_memories_for``); None if it has not, or the read was not consistent."""
    return _decoded.get((key, version_id), (None,))[0]


def writer_of(owner_id, client_id) -> tuple[int | None, str]:
    """The writer of these columns (``writer_key``'s rule, for rows read as tuples)."""
    return (owner_id, "") if owner_id is not None else (None, client_id)


def _memory_stamps(owners: list[int], clients: list[str], version_id: int) -> dict[tuple, tuple[int, int]]:
    """{writer key: (count, last id)} of these writers' entries from this model version; writers
    without a memory are absent.

    Plain SQL on the cursor: it runs for every batch, memory or not, and the ORM's building of
    the grouped query cost more than the database's answer (1.6 ms a drawing before, empty
    memory included; bench/writer_memory_cost.py). Users and anonymous clients are two
    branches so that the users' one is answered from the index (owner, version) alone.
    """
    table = WriterMemoryEntry._meta.db_table
    column = {
        name: connection.ops.quote_name(WriterMemoryEntry._meta.get_field(name).column)
        for name in ("owner", "client_id", "id", "model_version")
    }
    parts, params = [], []
    if owners:
        parts.append(
            f"SELECT {column['owner']}, '', COUNT(*), MAX({column['id']}) FROM {connection.ops.quote_name(table)}"
            f" WHERE {column['model_version']} = %s AND {column['owner']} IN ({', '.join(['%s'] * len(owners))})"
            f" GROUP BY {column['owner']}"
        )
        params += [version_id, *owners]
    if clients:
        parts.append(
            f"SELECT NULL, {column['client_id']}, COUNT(*), MAX({column['id']}) FROM {connection.ops.quote_name(table)}"
            f" WHERE {column['model_version']} = %s AND {column['owner']} IS NULL"
            f" AND {column['client_id']} IN ({', '.join(['%s'] * len(clients))}) GROUP BY {column['client_id']}"
        )
        params += [version_id, *clients]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        return {writer_of(owner_id, client_id): (n, last) for owner_id, client_id, n, last in cursor.fetchall()}


def writer_memories_for(rows: list[Submission], model_version: ModelVersion) -> dict[tuple, tuple]:
    """{writer key: (float32 (M, D) vectors sorted by label, int64 (M,) class indices)} for
    every writer of ``rows`` with a memory from ``model_version``.

    One query asks every writer's (count, last id) (``_memory_stamps``); only memories that changed since this
    process last decoded them are read again (a second query, for those writers alone).
    """
    owners = {row.owner_id for row in rows if row.owner_id is not None}
    clients = {row.client_id for row in rows if row.owner_id is None and row.client_id}
    if not owners and not clients:
        return {}
    stamps = _memory_stamps(sorted(owners), sorted(clients), model_version.id)
    if not stamps:
        return {}
    entries = WriterMemoryEntry.objects.filter(model_version=model_version)
    stale = [key for key, stamp in stamps.items() if _decoded.get((key, model_version.id), (None,))[0] != stamp]
    if stale:
        grouped = defaultdict(list)
        wanted = Q()
        for owner_id, client_id in stale:
            wanted |= writer_filter(owner_id=owner_id, client_id=client_id)
        for owner_id, client_id, label, vector in entries.filter(wanted).values_list(
            "owner_id", "client_id", "label", "vector"
        ):
            grouped[writer_of(owner_id, client_id)].append((label, bytes(vector)))
        for key, items in grouped.items():
            vectors = np.frombuffer(b"".join(vector for _, vector in items), dtype=EMBEDDING_DTYPE)
            labels = [class_index(label) for label, _ in items]
            stamp = (len(items), stamps[key][1]) if len(items) == stamps[key][0] else None
            _decoded[(key, model_version.id)] = (stamp, *memory_arrays(vectors.reshape(len(items), -1), labels))
    memories = {}
    for key in stamps:
        cached = _decoded.get((key, model_version.id))
        if cached is not None:
            _decoded.move_to_end((key, model_version.id))
            memories[key] = cached[1:]
    while len(_decoded) > DECODED_WRITERS:
        _decoded.popitem(last=False)
    return memories
