from dataclasses import replace

import numpy as np

from ml.inference import normalise
from ml.writer_layer import LayerRule, apply_correction, basis_of, fit_correction

D, C = 64, 62
RULE = LayerRule(steps=120, gamma=3.0)


def softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def looks_like(classes, weights, n=1, seed=0, noise=0.05):
    """Positive embeddings (a ReLU layer's) mixing the directions of ``classes``."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, D), np.float32)
    for c, w in zip(classes, weights):
        x[:, c] += w
    return normalise(x + noise * rng.random((n, D), dtype=np.float32))


def a_model_and_its_basis():
    """A last layer that reads direction c as class c, and plain anchors of every class."""
    weights = np.zeros((D, C), np.float32)
    weights[np.arange(C), np.arange(C)] = 1.0
    bias = np.zeros(C, np.float32)
    anchors = np.concatenate([looks_like([c], [1.0], n=4, seed=c) for c in range(C)])
    return weights, bias, basis_of(weights, bias, softmax(10.0 * anchors @ weights + bias), anchors)


def read(embeddings, weights, bias):
    return softmax(10.0 * embeddings @ weights + bias)


def test_an_empty_memory_has_no_correction():
    _, _, basis = a_model_and_its_basis()
    assert fit_correction(np.empty((0, D), np.float16), np.empty(0, np.int64), basis, RULE) is None


def test_one_correction_teaches_the_writers_way_of_drawing_a_class_and_keeps_plain_drawings():
    weights, bias, basis = a_model_and_its_basis()
    # This writer's 3 looks like a 5 with a stroke of 40: the model reads 5.
    theirs = looks_like([5, 40], [0.8, 0.6], n=20, seed=1)
    probs = read(theirs, weights, bias)
    assert (probs.argmax(axis=1) == 5).all()
    correction = fit_correction(theirs[:1].astype(np.float16), np.array([3]), basis, RULE)
    after = apply_correction(probs, theirs, correction, basis, RULE)
    assert (after.argmax(axis=1) == 3).all()  # the stored drawing and the 19 fresh ones like it
    plain = np.concatenate([looks_like([c], [1.0], n=3, seed=100 + c) for c in (3, 5, 40)])
    plain_after = apply_correction(read(plain, weights, bias), plain, correction, basis, RULE)
    assert list(plain_after.argmax(axis=1)) == [3] * 3 + [5] * 3 + [40] * 3
    assert np.allclose(after.sum(axis=1), 1.0, atol=1e-5) and after.dtype == np.float32


def test_without_anchors_the_same_correction_would_take_the_writers_plain_fives():
    """Why the anchors are there: a memory holds only misread drawings."""
    weights, bias, basis = a_model_and_its_basis()
    theirs = looks_like([5, 40], [0.8, 0.6], n=1, seed=1)
    unanchored = replace(basis, anchors=basis.anchors[:0], anchor_probs=basis.anchor_probs[:0])
    fives = looks_like([5], [1.0], n=10, seed=7)
    kept = apply_correction(
        read(fives, weights, bias), fives, fit_correction(theirs, np.array([3]), basis, RULE), basis, RULE
    )
    taken = apply_correction(
        read(fives, weights, bias), fives, fit_correction(theirs, np.array([3]), unanchored, RULE), unanchored, RULE
    )
    assert (kept.argmax(axis=1) == 5).sum() > (taken.argmax(axis=1) == 5).sum()


def test_the_same_memory_fits_the_same_correction_bit_for_bit():
    _, _, basis = a_model_and_its_basis()
    memory = looks_like([5, 40], [0.8, 0.6], n=3, seed=2).astype(np.float16)
    first = fit_correction(memory, np.array([3, 3, 7]), basis, RULE)
    assert first.shape == (D + 1, C) and first.dtype == np.float32
    assert np.array_equal(first, fit_correction(memory, np.array([3, 3, 7]), basis, RULE))


def test_a_zero_correction_leaves_the_probabilities_as_they_were():
    weights, bias, basis = a_model_and_its_basis()
    drawings = looks_like([9, 20], [0.7, 0.7], n=5, seed=3)
    probs = read(drawings, weights, bias)
    out = apply_correction(probs, drawings, np.zeros((D + 1, C), np.float32), basis, RULE)
    assert np.allclose(out, probs, atol=1e-6) and np.array_equal(out.argmax(axis=1), probs.argmax(axis=1))


def test_the_basis_centres_on_the_anchors_mean():
    _, _, basis = a_model_and_its_basis()
    assert np.allclose(basis.mean, basis.anchors.mean(axis=0)) and basis.mean.shape == (D,)


def test_anchors_weighed_per_entry_let_one_correction_move_a_class_and_hold_plain_letters_as_the_memory_grows():
    """The shipped rule's anchors weigh a multiple of the writer's entries: one correction of a
    drawing very like a 5 moves the writer's class, where a pull fixed per class holds it; and a
    memory of many drawings still leaves the writer's plain 5s as 5s, where a pull held at one
    correction's strength lets them go."""
    from ml.writer_layer import DEFAULT_LAYER_RULE

    assert DEFAULT_LAYER_RULE.per_entry > 0
    weights, bias, basis = a_model_and_its_basis()
    rule = replace(RULE, per_entry=DEFAULT_LAYER_RULE.per_entry)

    def taught(rule, theirs, shown):
        """``shown`` read after the writer taught every drawing of ``theirs`` as a 3."""
        correction = fit_correction(theirs.astype(np.float16), np.full(len(theirs), 3), basis, rule)
        return apply_correction(read(shown, weights, bias), shown, correction, basis, rule).argmax(axis=1)

    near = looks_like([5, 40], [0.98, 0.15], n=20, seed=3)
    assert (taught(rule, near[:1], near) == 3).all()
    assert (taught(RULE, near[:1], near) == 3).mean() < 0.5  # gamma 3: 186 entries' worth against one

    many, fives = looks_like([5, 40], [0.8, 0.6], n=40, seed=4), looks_like([5], [1.0], n=10, seed=8)
    weak = replace(RULE, gamma=DEFAULT_LAYER_RULE.per_entry / C)  # per class, at one entry's pull
    assert (taught(rule, many, fives) == 5).all()
    assert (taught(weak, many, fives) == 5).sum() < len(fives)
