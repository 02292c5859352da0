"""The model committed in the repo: it loads, it meets today's targets, and its report is its own.

Every figure here is deterministic (fixed splits, seeded renderings, a fixed model), so each
guard is the target itself or the measured figure less a stated margin, never a loose bound
that a real regression could slip under.
"""

import json

import numpy as np
import pytest

from bench.font_generalisation import EVAL_SEED, report
from ml.data import load_validation
from ml.evaluate import expected_calibration_error
from ml.font_families import FontsMissingError, installed_fonts
from ml.fonts import render_families
from ml.inference import load_predictor
from ml.preprocess import image_bytes_to_emnist
from ml.synth import render_canvas_png
from tests.ml.conftest import SHIPPED_MODEL, require_or_skip

pytestmark = pytest.mark.slow

# bench/canvas_fidelity.py's defaults: the figure the 1.5-point target is measured on.
CANVAS_N, CANVAS_SEED = 5000, 7
# Held-out fonts: this test draws 3 of each character per held-out family with
# bench/font_generalisation.py's seed, and guards the shipped model's own figures on them
# (measured 2026-12-02 on the blend of stages D and F, ml/blend.py; stage D alone, never trained
# on fonts, gave 0.905 / 0.861 print and 0.622 / 0.644 script) less one point: a change of the
# model, the renderer or the preprocessing that reads them worse fails. The targets
# (97% / 90% look-alike, 95% / 85% without a twin) are not met yet: ml/MODEL.md says where they stand.
FONT_PER_CLASS = 3
FONT_FLOORS = {
    "print": {"lookalike": 0.925, "twinless_top1": 0.887},
    "script": {"lookalike": 0.702, "twinless_top1": 0.707},
}
FONT_MARGIN = 0.01
# The per-drawing calibration shipped beside the model (ml.confidence, fitted by
# `python -m ml.calibrate --per-input` on EMNIST validation drawings and training families only):
# on the same held-out drawings, the shown probabilities' ECE and median top probability of the
# wrong answers, and the ECE on EMNIST validation, as measured 2026-12-02 on the blended model plus
# a margin (ceilings: lower is better). The targets (0.05 / 0.02, median p(wrong) < 0.5)
# are not met yet: ml/MODEL.md says where they stand.
CALIBRATED_CEILINGS = {"heldout_ece": 0.068, "heldout_median_wrong": 0.551, "emnist_ece": 0.053}
CALIBRATED_MARGIN = 0.01


@pytest.fixture(scope="module")
def shipped():
    assert SHIPPED_MODEL.exists(), f"the shipped model {SHIPPED_MODEL} is missing"
    return load_predictor(SHIPPED_MODEL)


@pytest.fixture(scope="module")
def shipped_report():
    return json.loads(SHIPPED_MODEL.with_suffix(".report.json").read_text())


@pytest.fixture(scope="module")
def validation(shared_data):
    return load_validation(shared_data)


@pytest.fixture(scope="module")
def validation_probs(shipped, validation):
    return shipped.probabilities(validation[0])


def test_the_shipped_model_scores_at_least_87_percent_top1_and_99_top3(validation, validation_probs):
    labels = validation[1]
    ranked = np.argsort(-validation_probs, axis=1)
    assert (ranked[:, 0] == labels).mean() >= 0.87
    assert (ranked[:, :3] == labels[:, None]).any(axis=1).mean() >= 0.99


def test_the_shipped_report_gives_the_models_own_figures(validation, validation_probs, shipped_report):
    # The serving path (TensorFlow Lite) and the Keras model the report was written from agree
    # to float rounding: a handful of near-ties may flip, no more.
    labels = validation[1]
    measured = (validation_probs.argmax(axis=1) == labels).mean()
    assert shipped_report["validation"]["n"] == len(labels)
    assert shipped_report["validation"]["top1"] == pytest.approx(measured, abs=3 / len(labels))
    assert shipped_report["validation"]["ece"] <= 0.02  # the calibration target on EMNIST
    assert SHIPPED_MODEL.with_suffix(".confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_canvas_drawings_lose_at_most_the_target_15_points(shipped, validation):
    # Exactly bench/canvas_fidelity.py's figure (same rows, same seeded drawings), against the target.
    images, labels = validation
    rng = np.random.default_rng(CANVAS_SEED)
    rows = np.sort(rng.permutation(len(images))[:CANVAS_N])
    images, labels = images[rows], labels[rows]
    raw = (shipped.probabilities(images).argmax(axis=1) == labels).mean()
    drawn = np.stack([image_bytes_to_emnist(render_canvas_png(img, rng)) for img in images])
    canvas = (shipped.probabilities(drawn).argmax(axis=1) == labels).mean()
    assert raw - canvas <= 0.015


@pytest.fixture(scope="module")
def heldout_fonts():
    try:
        return installed_fonts(split="heldout")
    except FontsMissingError as error:
        require_or_skip(str(error))


@pytest.fixture(scope="module")
def heldout_figures(shipped, heldout_fonts):
    """bench/font_generalisation.py's report on FONT_PER_CLASS drawings, raw and as shown."""
    images, labels, index = render_families(
        [(f.name, str(f.path)) for f in heldout_fonts], FONT_PER_CLASS, EVAL_SEED, workers=2
    )
    probs, embeddings = shipped.read(images)
    shown = shipped.calibration.apply(probs, embeddings) if shipped.calibration is not None else None
    return probs, shown, report(probs.astype(np.float64), labels.astype(np.int64), index, heldout_fonts, shown)


def test_held_out_handwriting_fonts_are_read_as_well_as_measured(heldout_figures):
    figures = heldout_figures[2]
    for style, floors in FONT_FLOORS.items():
        for key, floor in floors.items():
            assert figures["by_style"][style][key] >= floor - FONT_MARGIN, (style, key, figures["by_style"][style])


def test_the_shipped_calibration_is_fitted_for_the_shipped_model(shipped):
    # Tied to the model's bytes: a model saved over the file without a refit shows raw
    # probabilities, and this fails until `python -m ml.calibrate --per-input` is run again.
    assert shipped.calibration is not None


def test_the_calibration_keeps_every_ranking_and_softens_unfamiliar_letterforms(heldout_figures):
    probs, shown, figures = heldout_figures
    assert np.array_equal(np.argsort(-probs, axis=1)[:, :5], np.argsort(-shown, axis=1)[:, :5])
    overall = figures["overall"]
    assert overall["calibrated_ece"] <= CALIBRATED_CEILINGS["heldout_ece"] + CALIBRATED_MARGIN, overall
    assert overall["calibrated_median_wrong_confidence"] <= (
        CALIBRATED_CEILINGS["heldout_median_wrong"] + CALIBRATED_MARGIN
    ), overall


def test_the_calibration_costs_emnist_validation_no_more_than_measured(shipped, validation):
    images, labels = validation
    probs, embeddings = shipped.read(images)
    ece = expected_calibration_error(shipped.calibration.apply(probs, embeddings), labels)
    assert ece <= CALIBRATED_CEILINGS["emnist_ece"] + CALIBRATED_MARGIN, ece
