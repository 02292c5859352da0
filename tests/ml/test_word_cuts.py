"""Segmentation by recognition on synthetic pieces: candidate cuts, cutting a joined pair, joining
strokes, and the verifier (fitting, saving, the shipped file)."""

import numpy as np

from ml.pieces import Piece
from ml.preprocess import ink_to_png
from ml.segment import resplit, segment_image_bytes
from ml.word_cuts import (
    CUTS_PATH,
    SHAPE_FEATURES,
    CutWeights,
    Verifier,
    candidates,
    cut_columns,
    fit_verifier,
    load_cuts,
    may_resplit,
    resegment,
    run_features,
    save_cuts,
)


def joined_pair() -> np.ndarray:
    """Two 40x40 rings touching through a 3 px bridge at columns 38-40 of an 80 px wide piece."""
    ink = np.zeros((40, 80), dtype=np.float32)
    for left in (0, 41):
        ink[:, left : left + 39] = 1.0
        ink[6:34, left + 6 : left + 33] = 0.0
    ink[18:21, 38:41] = 1.0
    return ink


def test_the_cut_candidates_of_a_joined_pair_start_at_the_bridge():
    cuts = cut_columns(joined_pair(), height=40)
    assert cuts and 37 <= cuts[0] <= 41
    assert all(10 <= c <= 70 for c in cuts)  # never within a quarter of the height of an edge
    assert cut_columns(np.ones((40, 15)), height=40) == []  # too narrow to hold two characters


def with_embeddings(probabilities):
    """A stand-in CNN's read: its probabilities, and an embedding (the width of each ink here)."""

    def read(inks):
        return probabilities(inks), np.array([[ink.shape[1], 1.0] for ink in inks], dtype=np.float32)

    return read


def confident_when_narrow(inks):
    """A stand-in CNN: sure of anything about as wide as tall, unsure of anything wider."""
    out = np.full((len(inks), 62), 0.001, dtype=np.float32)
    for row, ink in zip(out, inks):
        row[0] = 0.95 if ink.shape[1] <= 1.2 * ink.shape[0] else 0.2
    return out


def test_a_joined_pair_is_cut_where_the_cnn_reads_two_characters_better():
    piece = Piece(box=(100, 50, 180, 90), ink=joined_pair())
    split = resegment([piece], with_embeddings(confident_when_narrow), CutWeights(per_character=0.5, cut=0.5, join=1.0))
    assert len(split) == 2
    assert 137 <= split[1].box[0] <= 141 and split[0].box[0] == 100 and split[1].box[2] == 180
    # A CNN as sure of the whole as of its halves: the piece stays whole.
    sure = lambda inks: np.tile(np.eye(62, dtype=np.float32)[:1], (len(inks), 1))  # noqa: E731
    assert len(resegment([piece], with_embeddings(sure), CutWeights(per_character=0.5, cut=0.5, join=1.0))) == 1


def test_side_by_side_strokes_of_one_letter_are_joined_and_spaced_letters_are_not():
    stem = Piece(box=(0, 0, 8, 40), ink=np.ones((40, 8), np.float32), strokes=(0,))
    arch = Piece(box=(10, 0, 34, 40), ink=np.ones((40, 24), np.float32), strokes=(1,))

    # The stand-in is unsure of a stem or an arch alone, sure of them together.
    def unsure_alone(inks):
        return np.array([[0.9 if i.shape[1] >= 30 else 0.3] + [0.0] * 61 for i in inks])

    weights = CutWeights(per_character=0.5, cut=0.5, join=1.0)
    joined = resegment([stem, arch], with_embeddings(unsure_alone), weights)
    assert len(joined) == 1 and joined[0].box == (0, 0, 34, 40) and joined[0].strokes == (0, 1)
    # Far apart (more than a quarter of the height), they are never candidates for one character.
    far = Piece(box=(30, 0, 54, 40), ink=np.ones((40, 24), np.float32), strokes=(1,))
    assert candidates([stem, far]) is None
    assert resegment([stem, far], with_embeddings(unsure_alone), weights) == [stem, far]


def test_a_verifier_fitted_on_runs_decides_where_the_cnn_cannot():
    """A CNN equally sure of everything leaves the choice to the verifier, which learns from
    labelled runs that one character is about as wide as tall (here: 30 to 50 px wide)."""
    piece = Piece(box=(100, 50, 180, 90), ink=joined_pair())
    found = candidates([piece])
    sure = lambda inks: np.tile(np.eye(62, dtype=np.float32)[:1], (len(inks), 1))  # noqa: E731
    probabilities, embeddings = with_embeddings(sure)([p.ink for p in found.pieces])
    features = run_features(found, probabilities, embeddings)
    assert features.shape == (len(found.runs), 2 + SHAPE_FEATURES)
    rng = np.random.default_rng(0)
    widths = rng.uniform(5, 90, 400)
    whole = (widths >= 30) & (widths <= 50)
    train = np.zeros((400, features.shape[1]), np.float32)
    train[:, 0], train[:, 1] = widths, 1.0  # the stand-in's embedding
    # The shape: width and height against the word's height, their ratio, atoms, joins, cuts,
    # the CNN's log confidence (always sure here).
    train[:, 2], train[:, 3], train[:, 4] = widths / 40, 1.0, widths / 40
    train[:, 5], train[:, 7] = rng.integers(1, 3, 400), rng.integers(0, 2, 400)
    verifier = fit_verifier(train, whole.astype(int), epochs=500)
    assert verifier.log_whole(train[whole]).mean() > np.log(0.7) > verifier.log_whole(train[~whole]).mean()
    assert np.array_equal(verifier.w1, fit_verifier(train, whole.astype(int), epochs=500).w1)  # deterministic
    weights = CutWeights(per_character=0.0, cut=0.0, join=0.0, cnn=0.0, verifier=1.0)
    split = resegment([piece], with_embeddings(sure), weights, verifier)
    assert len(split) == 2 and 137 <= split[1].box[0] <= 141


def test_weights_and_verifier_round_trip_through_the_file(tmp_path):
    weights = CutWeights(per_character=0.5, cut=0.0, join=0.0, wide=0.0, cnn=0.25, verifier=1.0)
    rng = np.random.default_rng(1)
    verifier = Verifier(*(rng.normal(size=shape).astype(np.float32) for shape in ((5,), (5,), (5, 3), (3,), (3,), ())))
    save_cuts(tmp_path / "cuts.npz", weights, verifier)
    loaded_weights, loaded = load_cuts(tmp_path / "cuts.npz")
    assert loaded_weights == weights
    x = rng.normal(size=(4, 5))
    assert np.array_equal(loaded.log_whole(x), verifier.log_whole(x))


def test_the_shipped_verifier_loads_and_fits_the_shipped_model():
    weights, verifier = load_cuts(CUTS_PATH)
    assert weights.verifier > 0
    # The shipped model's embedding is 256 wide: the verifier reads it and the run's shape.
    assert verifier.mean.shape == (256 + SHAPE_FEATURES,) and verifier.w1.shape[0] == 256 + SHAPE_FEATURES


def test_boxes_alone_tell_when_there_is_nothing_to_resplit():
    stem = Piece(box=(0, 0, 8, 40), ink=np.ones((40, 8), np.float32))
    arch = Piece(box=(10, 0, 34, 40), ink=np.ones((40, 24), np.float32))
    far = Piece(box=(30, 0, 54, 40), ink=np.ones((40, 24), np.float32))
    pair = Piece(box=(100, 50, 180, 90), ink=joined_pair())
    for pieces in ([stem, arch], [stem, far], [pair], [stem], [far, Piece(box=(70, 0, 94, 40), ink=far.ink)]):
        assert may_resplit([p.box for p in pieces]) == (candidates(pieces) is not None)
    assert may_resplit([]) is False


def test_resplit_segments_again_only_when_the_boxes_call_for_it_and_reads_its_runs_once():
    """ml.segment.resplit, the worker's second split, on a PNG: spaced rings are left as they
    are without a read; a joined pair is cut where the verifier prefers two characters."""
    calls = []

    def read(inputs):
        calls.append(len(inputs))
        # A CNN sure of everything; each input's inked columns as its "embedding".
        inked = (np.asarray(inputs) > 0).any(axis=1).sum(axis=1).astype(np.float32)
        return np.tile(np.eye(62, dtype=np.float32)[:1], (len(inputs), 1)), np.stack([inked, np.ones_like(inked)], 1)

    class OneCharacterWhenNarrow:
        """Stands in for a fitted verifier: a run is one character when it is at most 1.2 times as wide as tall."""

        def log_whole(self, features):
            return np.where(features[:, 2 + 2] <= 1.2, np.log(0.95), np.log(0.05))

    weights = CutWeights(per_character=0.0, cut=0.0, join=0.0, cnn=0.0, verifier=1.0)

    def rings(width):
        ink = np.zeros((60, 200), np.float32)
        for left in (10, 120):
            ink[10:50, left : left + width] = 1.0
            ink[16:44, left + 6 : left + width - 6] = 0.0
        return ink_to_png(ink)

    narrow = rings(24)  # as tall as 1.7 times their width: nothing to cut, too far apart to join
    found = segment_image_bytes(narrow)
    assert len(found.pieces) == 2
    assert resplit(narrow, None, [p.box for p in found.pieces], read, weights, OneCharacterWhenNarrow()) is None
    assert calls == []
    round_ = rings(40)  # as wide as tall: worth a look, and each ring read whole is the best path
    found = segment_image_bytes(round_)
    assert resplit(round_, None, [p.box for p in found.pieces], read, weights, OneCharacterWhenNarrow()) is None
    assert calls == [len(candidates(found.pieces).runs)]
    calls.clear()

    pair = np.zeros((60, 120), np.float32)
    pair[10:50, 10:90] = joined_pair()
    png = ink_to_png(pair)
    whole = segment_image_bytes(png)
    assert len(whole.pieces) == 1
    again = resplit(png, None, [p.box for p in whole.pieces], read, weights, OneCharacterWhenNarrow())
    assert calls and len(calls) == 1  # every candidate run in one read
    assert again is not None and len(again.pieces) == 2 and again.inputs.shape == (2, 28, 28)
    assert again.pieces[0].box[0] < again.pieces[1].box[0]
