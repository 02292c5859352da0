import numpy as np

from ml.inference import normalise
from ml.prototypes import PrototypeRule, adapt, class_similarity, memory_arrays

RULE = PrototypeRule(threshold=0.5, weight=1.0)


def drawings(n, seed=0, d=16):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(62), size=n).astype(np.float32), normalise(rng.normal(size=(n, d)))


def test_an_empty_memory_returns_the_posterior_itself():
    probs, embeddings = drawings(4)
    out, moved = adapt(probs, embeddings, np.empty((0, 16), np.float16), np.empty(0, np.int64), RULE)
    assert out is probs and not moved.any()


def test_a_stored_drawing_pulls_the_same_drawing_to_its_label_and_leaves_unlike_ones_bit_for_bit():
    probs, embeddings = drawings(3)
    far = -embeddings[0]  # cosine -1 with drawing 0
    vectors = np.stack([embeddings[1], far]).astype(np.float16)
    labels = np.array([7, 9])
    out, moved = adapt(probs, embeddings, vectors, labels, RULE)
    assert moved[1] and out[1].argmax() == 7 and np.isclose(out[1].sum(), 1, atol=1e-6)
    for row in np.flatnonzero(~moved):
        assert np.array_equal(out[row], probs[row])


def test_class_similarity_is_the_best_match_per_class_whatever_the_order():
    _, embeddings = drawings(5, seed=1)
    _, vectors = drawings(40, seed=2)
    labels = np.random.default_rng(3).integers(0, 62, size=40)
    expected = np.full((5, 62), -1.0, dtype=np.float32)
    for label in set(labels.tolist()):
        expected[:, label] = (embeddings @ vectors[labels == label].T).max(axis=1)
    assert np.allclose(class_similarity(embeddings, vectors, labels, 62), expected, atol=1e-5)
    assert np.allclose(class_similarity(embeddings, *memory_arrays(vectors, labels), 62), expected, atol=1e-5)


def test_the_posterior_moves_more_the_closer_the_stored_drawing():
    probs, embeddings = drawings(1, seed=4)
    _, other = drawings(1, seed=5)
    close = normalise(embeddings + 0.1 * other)
    farther = normalise(embeddings + 0.6 * other)
    near_out, _ = adapt(probs, embeddings, close, np.array([3]), RULE)
    far_out, _ = adapt(probs, embeddings, farther, np.array([3]), RULE)
    assert near_out[0, 3] > far_out[0, 3] > probs[0, 3]


def test_a_drawing_the_cnn_is_sure_of_is_left_bit_for_bit_even_beside_a_stored_drawing():
    probs, embeddings = drawings(2, seed=6)
    probs[0] = 0.001 / 61
    probs[0, 5] = 0.999  # sure of 5
    rule = PrototypeRule(threshold=0.5, weight=1.0, confident=0.95)
    out, moved = adapt(probs, embeddings, embeddings.astype(np.float16), np.array([7, 7]), rule)
    assert not moved[0] and np.array_equal(out[0], probs[0])
    assert moved[1] and out[1].argmax() == 7  # an unsure one is still read with the memory
    sure, sure_moved = adapt(probs[:1], embeddings[:1], embeddings.astype(np.float16), np.array([7, 7]), rule)
    assert np.array_equal(sure, probs[:1]) and not sure_moved.any()
