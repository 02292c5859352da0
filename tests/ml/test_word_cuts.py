"""Segmentation by recognition on synthetic pieces: candidate cuts, cutting a joined pair, joining strokes."""

import numpy as np

from ml.pieces import Piece
from ml.word_cuts import CutWeights, candidates, cut_columns, resegment


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


def confident_when_narrow(inks):
    """A stand-in CNN: sure of anything about as wide as tall, unsure of anything wider."""
    out = np.full((len(inks), 62), 0.001, dtype=np.float32)
    for row, ink in zip(out, inks):
        row[0] = 0.95 if ink.shape[1] <= 1.2 * ink.shape[0] else 0.2
    return out


def test_a_joined_pair_is_cut_where_the_cnn_reads_two_characters_better():
    piece = Piece(box=(100, 50, 180, 90), ink=joined_pair())
    split = resegment([piece], confident_when_narrow, CutWeights(per_character=0.5, cut=0.5, join=1.0))
    assert len(split) == 2
    assert 137 <= split[1].box[0] <= 141 and split[0].box[0] == 100 and split[1].box[2] == 180
    # A CNN as sure of the whole as of its halves: the piece stays whole.
    sure = lambda inks: np.tile(np.eye(62, dtype=np.float32)[:1], (len(inks), 1))  # noqa: E731
    assert len(resegment([piece], sure, CutWeights(per_character=0.5, cut=0.5, join=1.0))) == 1


def test_side_by_side_strokes_of_one_letter_are_joined_and_spaced_letters_are_not():
    stem = Piece(box=(0, 0, 8, 40), ink=np.ones((40, 8), np.float32), strokes=(0,))
    arch = Piece(box=(10, 0, 34, 40), ink=np.ones((40, 24), np.float32), strokes=(1,))

    # The stand-in is unsure of a stem or an arch alone, sure of them together.
    def unsure_alone(inks):
        return np.array([[0.9 if i.shape[1] >= 30 else 0.3] + [0.0] * 61 for i in inks])

    weights = CutWeights(per_character=0.5, cut=0.5, join=1.0)
    joined = resegment([stem, arch], unsure_alone, weights)
    assert len(joined) == 1 and joined[0].box == (0, 0, 34, 40) and joined[0].strokes == (0, 1)
    # Far apart (more than a quarter of the height), they are never candidates for one character.
    far = Piece(box=(30, 0, 54, 40), ink=np.ones((40, 24), np.float32), strokes=(1,))
    assert candidates([stem, far]) is None
    assert resegment([stem, far], unsure_alone, weights) == [stem, far]
