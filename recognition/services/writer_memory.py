"""Each writer's memory of their own corrected drawings, and reading a batch with it.

A correction copies the drawing's embedding (stored on the submission with its prediction)
into its writer's memory; the worker reads every writer of a batch's memory in one query,
chooses each changed memory's *hand* (``ml.writer_hand``: the turn and width that undo how
the writer writes, from the stored inputs of their corrected drawings and of drawings they
kept; the identity unless it reads most of their corrections right), fits it into a
correction of the model's last layer (``ml.writer_layer``), both once per change, and reads
each drawing through its writer's hand and with their correction. The writer is whoever owns the
submission, decided as ownership of submissions is: the user, else the anonymous client id.

The worker keeps each writer's decoded memory while it stays unchanged (``_decoded``): one
small query per batch checks that, so a 500-entry memory is not read and decoded again for
every drawing, nor fitted again. Entries whose vectors came from another model version than the serving one are ignored (not
recomputed): another model's penultimate layer is another space. They stay listed, so people
see and can forget them, and count against the bound until newer corrections push them out.
"""

from collections import OrderedDict, defaultdict

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q

from ml.data import class_index
from ml.prototypes import adapt, memory_arrays
from ml.writer_hand import DEFAULT_HAND_RULE, IDENTITY, Hand, choose_hand, read_with_hand, unturn
from ml.writer_layer import DEFAULT_LAYER_RULE, SAME_DRAWING, apply_correction, basis_for, fit_correction
from recognition.images import input28_array
from recognition.models import Correction, ModelVersion, Submission, WriterMemoryEntry

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
    return _writer_of(row.owner_id, row.client_id)


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


# Decoded memories of this process: {(writer key, version id): ((count, last id), vectors, labels)}.
# Entries never change once written (a relabel writes a new one), so a writer's (count, last
# id) says whether the copy here is still theirs. Bounded: the least recently used go first.
_decoded: OrderedDict = OrderedDict()
DECODED_WRITERS = 256


def _writer_of(owner_id, client_id) -> tuple[int | None, str]:
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
        return {_writer_of(owner_id, client_id): (n, last) for owner_id, client_id, n, last in cursor.fetchall()}


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
            grouped[_writer_of(owner_id, client_id)].append((label, bytes(vector)))
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


# This process's serving model's basis for the fits: (predictor, ml.writer_layer.Basis).
_basis: tuple | None = None
# Fitted corrections: {(writer key, version id): (the decoded vectors fitted, basis, correction)}.
# A memory decoded again (it changed) is a new array, so identity says whether a fit is current.
_fitted: OrderedDict = OrderedDict()


def _basis_of(predictor):
    """The basis of ``predictor``, made on first use (it reads the anchor drawings, ~0.3 s):
    only a batch with a memory in it pays, never an empty memory."""
    global _basis
    cached = _basis
    if cached is None or cached[0] is not predictor:
        cached = _basis = (predictor, basis_for(predictor))
    return cached[1]


def _correction_of(key, version_id: int, vectors: np.ndarray, labels: np.ndarray, basis) -> np.ndarray:
    """The writer's last-layer correction, fitted again only when their memory changed."""
    cached = _fitted.get((key, version_id))
    if cached is None or cached[0] is not vectors or cached[1] is not basis:
        cached = (vectors, basis, fit_correction(vectors, labels, basis, DEFAULT_LAYER_RULE))
        _fitted[(key, version_id)] = cached
    _fitted.move_to_end((key, version_id))
    while len(_fitted) > DECODED_WRITERS:
        _fitted.popitem(last=False)
    return cached[2]


# Chosen hands: {(writer key, version id): (the decoded vectors, predictor, (hand, the memory's
# vectors read through it, their labels))}; identity says whether it is current, as for _fitted.
_hands: OrderedDict = OrderedDict()


def _stored_inputs(rows) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 (N, 28, 28) inputs, int64 (N,) class indices) of (label, input28) rows, in order;
    rows whose input is not 28x28 (written by something else) are left out."""
    images, labels = [], []
    for label, data in rows:
        try:
            images.append(input28_array(data))
        except ValueError:
            continue
        labels.append(class_index(label))
    if not images:
        return np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64)
    return np.stack(images), np.array(labels, dtype=np.int64)


def _hand_drawings(key, model_version: ModelVersion):
    """What a writer's hand is chosen from, and their memory is read through it from: the
    inputs of all their memory's drawings with the labels they gave (oldest first; the choice
    takes the newest ``HandRule.corrections``), and of their newest predicted drawings that
    nobody corrected, with what they were read as (oldest first)."""
    mine = writer_filter(owner_id=key[0], client_id=key[1])
    taught = WriterMemoryEntry.objects.filter(mine, model_version=model_version).order_by("created_at", "id")
    taught = list(taught.values_list("label", "submission__input28"))
    kept = Submission.objects.filter(mine, status=Submission.Status.PREDICTED, corrections__isnull=True)
    kept = kept.exclude(predicted_label="").order_by("-created_at", "-id")
    kept = list(kept.values_list("predicted_label", "input28")[: DEFAULT_HAND_RULE.kept])
    return (*_stored_inputs(taught), *_stored_inputs(kept[::-1]))


def _hand_of(key, model_version: ModelVersion, vectors: np.ndarray, labels: np.ndarray, predictor):
    """(hand, vectors, labels) this writer's drawings are read with: their hand, and their
    memory as the CNN reads its drawings through it (sorted by label); the identity with the
    stored vectors. Chosen again only when their memory changed (0.9 s measured for 15 reads of
    124 corrected and 60 kept drawings, bench/writer_memory_cost.py, then one read of the whole
    memory through the hand)."""
    cached = _hands.get((key, model_version.id))
    if cached is None or cached[0] is not vectors or cached[1] is not predictor:
        state = (IDENTITY, vectors, labels)
        taught, taught_labels, kept, kept_labels = _hand_drawings(key, model_version)
        hand = choose_hand(lambda x: predictor.read(x)[0], taught, taught_labels, kept, kept_labels)
        if not hand.identity:
            read = predictor.read(unturn(taught, hand))[1]
            state = (hand, *memory_arrays(read, taught_labels))
        cached = _hands[(key, model_version.id)] = (vectors, predictor, state)
    _hands.move_to_end((key, model_version.id))
    while len(_hands) > DECODED_WRITERS:
        _hands.popitem(last=False)
    return cached[2]


def writer_hand_for(*, owner_id: int | None, client_id: str, model_version: ModelVersion) -> Hand | None:
    """The hand this process reads the writer's drawings with, if it has chosen one (None:
    not yet, or no memory)."""
    cached = _hands.get((_writer_of(owner_id, client_id), model_version.id))
    return cached[2][0] if cached is not None else None


def writer_memory_apply(
    rows: list[Submission],
    probs: np.ndarray,
    embeddings: np.ndarray,
    model_version: ModelVersion,
    predictor,
    images: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The batch's posteriors with each writer's memory: (float32 (N, 62), bool (N,) whether
    the memory changed the top answer). Rows of writers without a memory keep ``probs`` bit
    for bit; a drawing is only ever read with its own writer's memory. ``predictor`` is the
    ``ml.inference.Predictor`` that made ``probs`` and ``embeddings`` from ``images`` (uint8
    (N, 28, 28)); a writer with a hand has their drawings read again through it, with their
    correction (fitted on their memory read through it too), and that reading blended with
    the drawing's own (``ml.writer_hand.read_with_hand``)."""
    changed = np.zeros(len(rows), dtype=bool)
    memories = writer_memories_for(rows, model_version)
    if not memories:
        return probs, changed
    basis = _basis_of(predictor)
    out = probs.copy()
    by_writer = defaultdict(list)
    for i, row in enumerate(rows):
        by_writer[writer_key(row)].append(i)
    for key, (stored, stored_labels) in memories.items():
        index = np.array(by_writer[key])
        if stored.shape[1] != embeddings.shape[1] or stored.shape[1] != basis.weights.shape[0]:
            continue  # written by a model of another shape under this version's id: unusable
        hand, vectors, labels = _hand_of(key, model_version, stored, stored_labels, predictor)
        mine, seen = probs[index], embeddings[index]
        if not hand.identity:
            mine, seen = predictor.read(unturn(images[index], hand), single_max=SINGLE_PATH_MAX)
        correction = _correction_of(key, model_version.id, vectors, labels, basis)
        adapted = apply_correction(mine, seen, correction, basis, DEFAULT_LAYER_RULE)
        adapted, _ = adapt(adapted, seen, vectors, labels, SAME_DRAWING)
        if not hand.identity:
            adapted = read_with_hand(probs[index], adapted)
        out[index] = adapted
        changed[index] = adapted.argmax(axis=1) != probs[index].argmax(axis=1)
    return out, changed
