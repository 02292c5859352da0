"""A writer's memory worked out, and their drawings read with it.

When a writer's memory changes, it is worked out once for the serving model (an
``Adaptation``): their *hand* (``ml.writer_hand``: the turn and width that undo how they
write, chosen from the stored inputs of their corrected drawings and of drawings they kept;
the identity unless it reads most of their corrections right), their memory's vectors read
through it, and the correction of the model's last layer fitted to those (``ml.writer_layer``).
A correction queues that work (``writer_memory_prepare``, in a worker) so that the writer's next
drawing does not wait for it; it is stored (``WriterAdaptation``), so every worker process reads
the same one, and kept per process while the memory stays unchanged. A batch then reads each
drawing through its writer's hand and with their correction (``writer_memory_apply``).
"""

import logging
from collections import OrderedDict, defaultdict
from dataclasses import dataclass

import numpy as np
from django.db import IntegrityError, transaction

from ml.data import class_index
from ml.prototypes import adapt, memory_arrays
from ml.writer_hand import DEFAULT_HAND_RULE, Hand, choose_hand, read_with_hand, unturn
from ml.writer_layer import DEFAULT_LAYER_RULE, SAME_DRAWING, apply_correction, basis_for, fit_correction
from recognition.images import input28_array
from recognition.models import ModelVersion, Submission, WriterAdaptation, WriterMemoryEntry
from recognition.services.writer_memory import (
    DECODED_WRITERS,
    EMBEDDING_DTYPE,
    SINGLE_PATH_MAX,
    memory_stamp,
    writer_filter,
    writer_key,
    writer_memories_for,
    writer_of,
)

logger = logging.getLogger(__name__)


# This process's serving model's basis for the fits: (predictor, ml.writer_layer.Basis).
_basis: tuple | None = None


def _basis_of(predictor):
    """The basis of ``predictor``, made on first use (it reads the anchor drawings, ~0.3 s):
    only a batch with a memory in it pays, never an empty memory."""
    global _basis
    cached = _basis
    if cached is None or cached[0] is not predictor:
        cached = _basis = (predictor, basis_for(predictor))
    return cached[1]


@dataclass(frozen=True)
class Adaptation:
    """A writer's memory worked out for one model version: their hand, the memory's vectors
    as the CNN reads its drawings through that hand (the stored ones for the identity), and
    the last-layer correction fitted to them."""

    hand: Hand
    vectors: np.ndarray  # float32 (M, D), sorted by label
    labels: np.ndarray  # int64 (M,)
    correction: np.ndarray  # float32 (D + 1, C)


# Worked-out memories of this process: {(writer key, version id): (the decoded vectors, the
# predictor, Adaptation)}. A memory decoded again (it changed) is a new array, so identity says
# whether an adaptation is current. Bounded: the least recently used go first.
_adapted: OrderedDict = OrderedDict()


def _writer_name(key: tuple) -> str:
    """``WriterAdaptation.writer`` of a writer key."""
    return f"user:{key[0]}" if key[0] is not None else f"client:{key[1]}"


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


def _work_out(key, model_version: ModelVersion, vectors: np.ndarray, labels: np.ndarray, predictor, basis):
    """The writer's ``Adaptation``: the hand chosen from their drawings (``_hand_drawings``;
    0.9 s measured for 15 reads of 124 corrected and 60 kept drawings,
    bench/writer_memory_cost.py), their memory read through it (the vectors rounded to the
    stored precision, so that a process that reads the stored adaptation reads exactly these),
    and the correction fitted to that."""
    taught, taught_labels, kept, kept_labels = _hand_drawings(key, model_version)
    hand = choose_hand(lambda x: predictor.read(x)[0], taught, taught_labels, kept, kept_labels)
    if not hand.identity:
        read = predictor.read(unturn(taught, hand))[1].astype(EMBEDDING_DTYPE)
        vectors, labels = memory_arrays(read, taught_labels)
    return Adaptation(hand, vectors, labels, fit_correction(vectors, labels, basis, DEFAULT_LAYER_RULE))


def _read_stored(key, model_version: ModelVersion, stamp: tuple[int, int], basis) -> Adaptation | None:
    """The adaptation another process stored for this memory (the same count and newest entry),
    if it fits this model's shape; else None."""
    row = (
        WriterAdaptation.objects.filter(
            writer=_writer_name(key), model_version=model_version, memory_count=stamp[0], memory_last=stamp[1]
        )
        .only("rotate", "wide", "vectors", "labels", "correction")
        .first()
    )
    if row is None:
        return None
    dims, classes = basis.weights.shape
    correction = np.frombuffer(bytes(row.correction), dtype=np.float32)
    labels = np.frombuffer(bytes(row.labels), dtype=np.uint8).astype(np.int64)
    vectors = np.frombuffer(bytes(row.vectors), dtype=EMBEDDING_DTYPE)
    if correction.size != (dims + 1) * classes or vectors.size != len(labels) * dims:
        return None  # made by a model of another shape under this version's id
    vectors = vectors.reshape(len(labels), dims).astype(np.float32)
    return Adaptation(Hand(row.rotate, row.wide), vectors, labels, correction.reshape(dims + 1, classes).copy())


def _store(key, model_version: ModelVersion, stamp: tuple[int, int], adaptation: Adaptation) -> None:
    """Keep ``adaptation`` for the other processes (one row per writer and version, replaced)."""
    fields = {
        "owner_id": key[0],
        "client_id": key[1],
        "memory_count": stamp[0],
        "memory_last": stamp[1],
        "rotate": adaptation.hand.rotate,
        "wide": adaptation.hand.wide,
        "vectors": np.asarray(adaptation.vectors, dtype=EMBEDDING_DTYPE).tobytes(),
        "labels": np.asarray(adaptation.labels, dtype=np.uint8).tobytes(),
        "correction": np.ascontiguousarray(adaptation.correction, dtype=np.float32).tobytes(),
    }
    try:
        with transaction.atomic():  # a savepoint inside a batch's transaction
            WriterAdaptation.objects.update_or_create(
                writer=_writer_name(key), model_version=model_version, defaults=fields
            )
    except IntegrityError:
        pass  # another process stored it at the same moment: theirs is the same memory's


def _adaptation_of(key, model_version: ModelVersion, vectors: np.ndarray, labels: np.ndarray, predictor, basis):
    """The writer's ``Adaptation``: this process's, else the one stored for their memory as it
    is now, else worked out here (and stored for the others). Worked out again only when
    their memory changed."""
    cached = _adapted.get((key, model_version.id))
    if cached is None or cached[0] is not vectors or cached[1] is not predictor:
        stamp = memory_stamp(key, model_version.id)
        adaptation = _read_stored(key, model_version, stamp, basis) if stamp is not None else None
        if adaptation is None:
            adaptation = _work_out(key, model_version, vectors, labels, predictor, basis)
            if stamp is not None:
                _store(key, model_version, stamp, adaptation)
        cached = _adapted[(key, model_version.id)] = (vectors, predictor, adaptation)
    _adapted.move_to_end((key, model_version.id))
    while len(_adapted) > DECODED_WRITERS:
        _adapted.popitem(last=False)
    return cached[2]


def writer_hand_for(*, owner_id: int | None, client_id: str, model_version: ModelVersion) -> Hand | None:
    """The hand this process reads the writer's drawings with, if it has worked their memory
    out (None: not yet, or no memory)."""
    cached = _adapted.get((writer_of(owner_id, client_id), model_version.id))
    return cached[2].hand if cached is not None else None


def writer_memory_prepare(*, owner_id: int | None, client_id: str) -> Adaptation | None:
    """Work out this writer's changed memory for the serving model now, and store it: queued
    by a correction (``writer_memory_remember``), so that their next drawing is read with it
    at once instead of waiting ~1 s for it. None without a memory or a loadable model."""
    from recognition.selectors import model_version_get_serving  # here: selectors import models only
    from recognition.services.predictors import predictor_get

    if owner_id is None and not client_id:
        return None
    model_version = model_version_get_serving()
    if model_version is None:
        return None
    writer = WriterMemoryEntry(owner_id=owner_id, client_id="" if owner_id is not None else client_id)
    memories = writer_memories_for([writer], model_version)
    key = writer_of(owner_id, client_id)
    if key not in memories:
        return None
    try:
        predictor = predictor_get(model_version=model_version)
    except Exception as exc:  # noqa: BLE001 - a model that does not load: the batches report it
        logger.warning("writer memory not prepared: %s", exc)
        return None
    basis = _basis_of(predictor)
    vectors, labels = memories[key]
    if vectors.shape[1] != basis.weights.shape[0]:
        return None
    return _adaptation_of(key, model_version, vectors, labels, predictor, basis)


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
        adaptation = _adaptation_of(key, model_version, stored, stored_labels, predictor, basis)
        hand = adaptation.hand
        mine, seen = probs[index], embeddings[index]
        if not hand.identity:
            mine, seen = predictor.read(unturn(images[index], hand), single_max=SINGLE_PATH_MAX)
        adapted = apply_correction(mine, seen, adaptation.correction, basis, DEFAULT_LAYER_RULE)
        adapted, _ = adapt(adapted, seen, adaptation.vectors, adaptation.labels, SAME_DRAWING)
        if not hand.identity:
            adapted = read_with_hand(probs[index], adapted)
        out[index] = adapted
        changed[index] = adapted.argmax(axis=1) != probs[index].argmax(axis=1)
    return out, changed
