"""Honest confidence (issue 15): the site shows the calibrated probabilities of a model that has a
calibration beside it (``ml.confidence``), ranked as the raw ones; the word context reads the raw."""

import shutil

import numpy as np
import pytest

from ml.confidence import InputCalibration, save_calibration
from ml.word_context import load_context
from recognition import services
from recognition.images import input28_array
from recognition.models import ModelVersion, Submission
from recognition.services.predictors import predictor_get
from recognition.services.results import raw_top_k
from tests.site.conftest import canvas_png
from tests.site.helpers import submit_and_predict, word_drawing

pytestmark = pytest.mark.django_db(transaction=True)

TEMPERATURE = 4.0  # the same for every drawing: easy to check by hand


@pytest.fixture
def calibrated_model(tiny_model_path, tmp_path):
    """The tiny model with a calibration beside it that divides every drawing's log-probabilities by 4."""
    path = tmp_path / "calibrated.keras"
    shutil.copy(tiny_model_path, path)
    centroids = np.eye(62, 16, dtype=np.float32)  # unused by these weights; the tiny model's embedding is 16 wide
    save_calibration(path, InputCalibration(centroids=centroids, weights=(float(np.log(TEMPERATURE)), 0.0, 0.0)), {})
    return ModelVersion.objects.create(name="calibrated", file_path=str(path), status=ModelVersion.Status.ACTIVE)


def tempered(raw: list[float]) -> np.ndarray:
    """The shown probabilities of a row, from its 62 raw ones."""
    z = np.log(np.asarray(raw, dtype=np.float64)) / TEMPERATURE
    return np.exp(z - z.max()) / np.exp(z - z.max()).sum()


def test_a_prediction_shows_calibrated_probabilities_in_the_models_order(anon, calibrated_model):
    body = submit_and_predict(anon, canvas_png())
    row = Submission.objects.get(id=body["id"])
    predictor = predictor_get(model_version=calibrated_model)
    assert predictor.calibration is not None
    raw = predictor.probabilities(input28_array(row.input28)[None])[0].astype(np.float64)
    order = np.argsort(-raw)[:5]
    shown = tempered(raw)
    assert [p["label"] for p in row.top_k] == [predictor.classes[c] for c in order]
    assert [p["probability"] for p in row.top_k] == pytest.approx(shown[order], abs=2e-6)
    assert [p for _, p in raw_top_k(row.top_k)] == pytest.approx(raw[order], abs=2e-6)
    assert row.confidence == row.top_k[0]["probability"] < raw[order[0]]
    # The API shows the calibrated probabilities only.
    assert body["confidence"] == row.confidence
    assert body["top_k"] == [{"label": p["label"], "probability": p["probability"]} for p in row.top_k]


def test_a_model_without_a_calibration_shows_its_raw_probabilities(anon, active_model):
    row = Submission.objects.get(id=submit_and_predict(anon, canvas_png())["id"])
    assert all(set(p) == {"label", "probability"} for p in row.top_k)
    predictor = predictor_get(model_version=active_model)
    expected = predictor.top_k(predictor.probabilities(input28_array(row.input28)[None]), 5)[0]
    assert raw_top_k(row.top_k) == [(label, round(p, 6)) for label, p in expected]


def test_the_word_context_reads_the_raw_probabilities_not_the_shown_ones(calibrated_model):
    image, strokes, _ = word_drawing(4)
    word = services.word_create(image=image, content_type="image/png", strokes=strokes)
    word.refresh_from_db()
    assert word.status == "predicted" and len(word.readings) == 3
    characters = word.characters.order_by("position")
    assert any("raw" in p for c in characters for p in c.top_k)
    raw = load_context().decode([raw_top_k(c.top_k) for c in characters], word.boxes)
    assert [r["text"] for r in word.readings] == [r.text for r in raw]
    assert [r["score"] for r in word.readings] == pytest.approx([r.score for r in raw])
