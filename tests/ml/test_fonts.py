"""The handwriting-font renderer (ml.fonts) and the temperature calibration (ml.calibrate), on tiny data.

The renderer tests use the two typefaces the site itself serves (committed under
frontend/static/frontend/fonts/), so they need no installed font cache.
"""

import json

import keras
import numpy as np
import pytest

from ml import train
from ml.calibrate import apply_temperature, fit_temperature
from ml.data import CLASSES, to_upright
from ml.evaluate import softmax
from ml.font_families import FAMILIES, FontsMissingError, installed_fonts
from ml.fonts import FEATURE_CANDIDATES, font_alternates, render_families, render_family, render_glyph_ink
from ml.model import build_model
from tests.ml.conftest import REPO, SHIPPED_MODEL, require_or_skip

CAVEAT = str(REPO / "frontend/static/frontend/fonts/caveat-latin-400-normal.woff2")
DANCING = str(REPO / "frontend/static/frontend/fonts/dancing-script-latin-700-normal.woff2")


def test_every_class_renders_to_an_emnist_input():
    images, labels = render_family("Caveat", CAVEAT, per_class=1, seed=3)
    assert images.shape == (62, 28, 28) and images.dtype == np.uint8
    assert [CLASSES[i] for i in labels] == list(CLASSES)
    assert all(image.max() == 255 for image in images)  # ink_to_emnist's scaling: none blank


def test_the_orientation_is_emnists():
    # An "L" is a bar on the left and a bar at the bottom when upright (img.T in EMNIST's storage).
    images, labels = render_family("Caveat", CAVEAT, per_class=6, seed=4)
    for upright in to_upright(images[labels == CLASSES.index("L")]).astype(float):
        assert upright[:, :10].sum() > upright[:, -10:].sum()
        assert upright[-10:, :].sum() > upright[:10, :].sum()
    # and the stored array is not upright: the same check on the raw array fails for most.
    raw = images[labels == CLASSES.index("L")].astype(float)
    assert sum(r[-10:, :].sum() > r[:10, :].sum() and r[:, :10].sum() > r[:, -10:].sum() for r in raw) < 6


def test_the_same_seed_gives_the_same_images_and_another_seed_others():
    a, _ = render_family("Dancing Script", DANCING, per_class=2, seed=7)
    b, _ = render_family("Dancing Script", DANCING, per_class=2, seed=7)
    c, _ = render_family("Dancing Script", DANCING, per_class=2, seed=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_parallel_rendering_gives_what_one_process_gives():
    families = [("Caveat", CAVEAT), ("Dancing Script", DANCING)]
    one = render_families(families, per_class=1, seed=5, workers=1)
    two = render_families(families, per_class=1, seed=5, workers=2)
    for x, y in zip(one, two):
        assert np.array_equal(x, y)
    assert list(np.unique(one[2])) == [0, 1]


def test_drawings_vary_in_size_slant_and_pen():
    rng = np.random.default_rng(1)
    inks = [render_glyph_ink(CAVEAT, "A", rng) for _ in range(12)]
    sizes = {max(ink.shape) for ink in inks}
    assert len(sizes) > 6  # random size (and rotation/shear change the box too)
    assert all(0.0 <= ink.min() and ink.max() <= 1.0 for ink in inks)


def test_alternates_are_features_that_change_a_glyph():
    for path in (CAVEAT, DANCING):
        found = font_alternates(path)
        assert set(found) <= set(FEATURE_CANDIDATES)


def test_fit_temperature_recovers_the_temperature_the_logits_were_sharpened_by():
    rng = np.random.default_rng(0)
    calibrated = rng.normal(0, 2.0, (4000, 62))
    labels = np.array([rng.choice(62, p=p) for p in softmax(calibrated)])
    assert fit_temperature(calibrated * 2.5, labels) == pytest.approx(2.5, rel=0.1)
    assert fit_temperature(calibrated, labels) == pytest.approx(1.0, rel=0.1)


def test_apply_temperature_softens_without_changing_the_ranking():
    keras.utils.set_random_seed(0)
    model = build_model(width=4, dense=8, dropout=0.0)
    images = np.random.default_rng(0).integers(0, 256, (16, 28, 28, 1)).astype(np.float32)
    before = model.predict(images, verbose=0)
    apply_temperature(model, 2.0)
    after = model.predict(images, verbose=0)
    np.testing.assert_allclose(after, before / 2.0, rtol=1e-4, atol=1e-5)
    assert np.array_equal(np.argsort(-after, axis=1), np.argsort(-before, axis=1))


@pytest.fixture(scope="module")
def font_cache():
    """The installed handwriting fonts (scripts/install-fonts): a skip with the reason when absent,
    a failure under REQUIRE_SERVICES=1."""
    try:
        return installed_fonts()
    except FontsMissingError as error:
        require_or_skip(str(error))


def test_training_renders_only_training_families_never_held_out_ones(font_cache, tmp_path, monkeypatch):
    drawn = []

    def spy(families, per_class, seed, workers=2):
        drawn.extend(name for name, _ in families)
        n = len(families) * 62 * per_class
        return np.zeros((n, 28, 28), np.uint8), np.zeros(n, np.uint8), np.zeros(n, np.int16)

    monkeypatch.setattr(train, "render_families", spy)
    images, allowed, names = train.font_rows(10_000, train.TrainConfig(font_share=0.5), tmp_path)
    heldout = {f.name for f in FAMILIES if f.split == "heldout"}
    assert drawn and set(drawn) == set(names)
    assert not set(drawn) & heldout
    assert set(drawn) == {f.name for f in font_cache if f.split == "train"}
    assert len(images) == len(allowed) > 0


def test_the_shipped_model_was_never_trained_on_a_held_out_family():
    # ml.train records the families a model was trained on in its report ("font_families");
    # a model trained on none (the shipped stage D) has none to list.
    report = json.loads(SHIPPED_MODEL.with_suffix(".report.json").read_text())
    trained = set(report.get("font_families", []))
    assert not trained & {f.name for f in FAMILIES if f.split == "heldout"}
    assert trained <= {f.name for f in FAMILIES if f.split == "train"}


def test_a_report_written_by_a_font_run_lists_its_families_and_none_is_held_out():
    # Stage F of 2026-12-01 (ml/MODEL.md: a candidate, not shipped), kept with its report.
    report = json.loads((REPO / "ml/artifacts/candidates/stage_f.report.json").read_text())
    trained = set(report["font_families"])
    assert len(trained) >= 40
    assert not trained & {f.name for f in FAMILIES if f.split == "heldout"}
