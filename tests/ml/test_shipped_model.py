"""The model committed in the repo: it loads, and it is as good as its report says."""

import json

import numpy as np
import pytest

from ml.data import load_validation
from ml.inference import load_predictor
from ml.preprocess import image_bytes_to_emnist
from ml.synth import render_canvas_png
from tests.ml.conftest import SHIPPED_MODEL

pytestmark = pytest.mark.slow

SAMPLE = 4000  # a fixed, seeded sample of the validation split (the canvas guard uses it)


@pytest.fixture(scope="module")
def shipped():
    assert SHIPPED_MODEL.exists(), f"the shipped model {SHIPPED_MODEL} is missing"
    return load_predictor(SHIPPED_MODEL)


@pytest.fixture(scope="module")
def sample(shared_data):
    images, labels = load_validation(shared_data)
    rows = np.sort(np.random.default_rng(2026).permutation(len(images))[:SAMPLE])
    return images[rows], labels[rows]


def test_the_shipped_model_scores_at_least_87_percent_top1_and_99_top3(shipped, shared_data):
    # The whole validation split (11,867 images, a few seconds), the figure the target is set
    # on: a 4,000-image sample carries about +-0.5 points of sampling error (the shipped model
    # scores 87.24% on the split and 86.95% on the seed-2026 sample of 4,000).
    images, labels = load_validation(shared_data)
    probs = shipped.probabilities(images)
    ranked = np.argsort(-probs, axis=1)
    assert (ranked[:, 0] == labels).mean() >= 0.87
    assert (ranked[:, :3] == labels[:, None]).any(axis=1).mean() >= 0.99


def test_the_shipped_report_matches_the_model(shipped):
    report = json.loads(SHIPPED_MODEL.with_suffix(".report.json").read_text())
    assert report["validation"]["top1"] >= 0.87
    assert SHIPPED_MODEL.with_suffix(".confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_canvas_drawings_score_no_worse_than_the_measured_gap(shipped, sample):
    # A regression guard, not the target: bench/canvas_fidelity.py measured a 1.82-point gap on
    # 5,000 images (the issue asks for 1.5; see ml/MODEL.md), and this sample 2.40 points.
    # Fails if preprocessing, or the model's training on canvas round-trips, gets worse.
    images, labels = sample[0][:1500], sample[1][:1500]
    rng = np.random.default_rng(11)
    raw = (shipped.probabilities(images).argmax(axis=1) == labels).mean()
    through = np.stack([image_bytes_to_emnist(render_canvas_png(img, rng)) for img in images])
    canvas = (shipped.probabilities(through).argmax(axis=1) == labels).mean()
    assert raw - canvas <= 0.03  # 2.4 points measured on these 1,500 images
