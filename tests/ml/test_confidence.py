import json
import shutil

import numpy as np
import pytest

from ml.confidence import (
    InputCalibration,
    calibration_paths,
    class_centroids,
    entropy,
    fit_weights,
    load_calibration,
    save_calibration,
    temper,
    unfamiliarity,
)
from ml.evaluate import expected_calibration_error, softmax
from ml.inference import load_predictor

C, D = 5, 8


def unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def two_populations(n=600, seed=0):
    """Familiar drawings (at their class's centroid, honestly confident) and unfamiliar ones
    (far from every centroid, as confident but right only 40% of the time)."""
    rng = np.random.default_rng(seed)
    centroids = np.eye(C, D, dtype=np.float32)
    labels = rng.integers(0, C, size=n)
    unfamiliar = np.arange(n) >= n // 2
    guess = labels.copy()
    flip = unfamiliar & (rng.random(n) > 0.4)
    guess[flip] = (labels[flip] + rng.integers(1, C, size=flip.sum())) % C
    logits = rng.normal(0, 0.3, size=(n, C))
    logits[np.arange(n), guess] += np.where(unfamiliar, 5.0, 2.5)
    probs = softmax(logits)
    near = centroids[guess] + rng.normal(0, 0.05, size=(n, D))
    far = rng.normal(size=(n, D))
    embeddings = unit(np.where(unfamiliar[:, None], far, near))
    return probs, embeddings, labels, centroids, unfamiliar


@pytest.fixture
def population():
    probs, embeddings, labels, _, unfamiliar = two_populations()
    centroids = class_centroids(embeddings[~unfamiliar], labels[~unfamiliar], C)
    return probs, embeddings, labels, centroids, unfamiliar


def test_tempering_never_changes_the_order_of_a_drawings_classes():
    rng = np.random.default_rng(1)
    probs = softmax(rng.normal(0, 4, size=(200, 62))).astype(np.float32)
    probs[0, :10] = 0.0  # float32 underflow: ties stay ties
    probs[0] /= probs[0].sum()
    temperatures = np.exp(rng.uniform(np.log(0.5), np.log(20), size=200))
    shown = temper(probs, temperatures)
    assert np.allclose(shown.sum(axis=1), 1.0)
    for raw, seen in zip(probs, shown):
        assert np.array_equal(np.argsort(-raw, kind="stable"), np.argsort(-seen, kind="stable"))
    assert np.allclose(temper(probs, np.ones(200)), probs, atol=1e-6)


def test_a_higher_temperature_lowers_the_top_probability():
    probs = softmax(np.random.default_rng(2).normal(0, 3, size=(1, 62)))
    tops = [temper(probs, np.array([t]))[0].max() for t in (0.5, 1.0, 2.0, 5.0)]
    assert tops == sorted(tops, reverse=True) and tops[0] > tops[-1]


def test_unfamiliarity_is_zero_at_a_centroid_and_grows_away_from_them():
    centroids = unit(np.eye(C, D))
    assert unfamiliarity(centroids, centroids) == pytest.approx(np.zeros(C), abs=1e-6)
    between = unit([[1, 1, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0.1, 0, 0, 0, 0]])
    assert unfamiliarity(between, centroids)[0] > unfamiliarity(between, centroids)[1] > 0


def test_entropy_is_zero_for_a_sure_answer_and_log_c_for_a_flat_one():
    assert entropy(np.array([[1.0, 0, 0, 0, 0], [0.2] * 5])) == pytest.approx([0.0, np.log(5)])


def test_the_fit_warms_unfamiliar_drawings_and_lowers_their_calibration_error(population):
    probs, embeddings, labels, centroids, unfamiliar = population
    weights = fit_weights(probs, embeddings, labels, centroids)
    calibration = InputCalibration(centroids=centroids, weights=tuple(weights))
    temperatures = calibration.temperatures(probs, embeddings)
    assert np.median(temperatures[unfamiliar]) > 2 * np.median(temperatures[~unfamiliar])
    shown = calibration.apply(probs, embeddings)
    assert np.allclose(shown, temper(probs, temperatures), atol=1e-12)
    before = expected_calibration_error(probs[unfamiliar], labels[unfamiliar])
    after = expected_calibration_error(shown[unfamiliar], labels[unfamiliar])
    assert after < before / 2
    assert np.array_equal(shown.argmax(axis=1), probs.argmax(axis=1))


def test_a_refit_on_the_same_rows_gives_the_same_weights(population):
    probs, embeddings, labels, centroids, _ = population
    first = fit_weights(probs, embeddings, labels, centroids)
    again = fit_weights(probs.copy(), embeddings.copy(), labels.copy(), centroids.copy())
    assert np.array_equal(first, again)
    assert np.array_equal(class_centroids(embeddings, labels, C), class_centroids(embeddings, labels, C))


def test_it_loads_the_parameters_written_beside_the_model(tmp_path, population):
    _, _, _, centroids, _ = population
    model = tmp_path / "m.keras"
    model.write_bytes(b"model bytes")
    assert load_calibration(model) is None  # none beside it: raw probabilities
    save_calibration(model, InputCalibration(centroids=centroids, weights=(0.1, 2.0, 0.3)), {"note": "test"})
    params, vectors = calibration_paths(model)
    assert params.name == "m.calibration.json" and vectors.name == "m.centroids.npy"
    loaded = load_calibration(model)
    assert loaded.weights == (0.1, 2.0, 0.3) and np.array_equal(loaded.centroids, centroids)
    assert json.loads(params.read_text())["note"] == "test"


def test_it_refuses_parameters_fitted_for_other_model_bytes(tmp_path, population, caplog):
    _, _, _, centroids, _ = population
    model = tmp_path / "m.keras"
    model.write_bytes(b"model bytes")
    save_calibration(model, InputCalibration(centroids=centroids, weights=(0.0, 1.0, 0.0)), {})
    model.write_bytes(b"a retrained model saved over it")
    assert load_calibration(model) is None
    assert "other model bytes" in caplog.text


def test_it_refuses_centroids_that_do_not_match_the_parameters(tmp_path, population):
    _, _, _, centroids, _ = population
    model = tmp_path / "m.keras"
    model.write_bytes(b"model bytes")
    save_calibration(model, InputCalibration(centroids=centroids, weights=(0.0, 1.0, 0.0)), {})
    np.save(calibration_paths(model)[1], centroids * 2)
    assert load_calibration(model) is None


def test_the_predictor_shows_calibrated_probabilities_in_the_raw_order(tiny_model_path, tmp_path):
    model = tmp_path / "tiny.keras"
    shutil.copy(tiny_model_path, model)
    plain = load_predictor(model)
    images = np.random.default_rng(3).integers(0, 256, size=(8, 28, 28), dtype=np.uint8)
    probs, embeddings = plain.read(images)
    assert plain.calibration is None
    assert [[(label, shown) for label, shown, _ in row] for row in plain.shown_top_k(probs, embeddings, 5)] == (
        plain.top_k(probs, 5)
    )
    centroids = unit(np.random.default_rng(4).normal(size=(62, embeddings.shape[1])))
    save_calibration(model, InputCalibration(centroids=centroids, weights=(np.log(3.0), 0.0, 0.0)), {})
    calibrated = load_predictor(model)
    tops = calibrated.shown_top_k(probs, embeddings, 5)
    for row, raw_row in zip(tops, calibrated.top_k(probs, 5)):
        assert [label for label, _, _ in row] == [label for label, _ in raw_row]
        assert [raw for _, _, raw in row] == [p for _, p in raw_row]
        assert row[0][1] < row[0][2]  # T = 3 softens the top answer
