"""ml.blend: weights on the straight line between two models of one network."""

import json

import numpy as np
import pytest

from ml.blend import blend, blend_weights
from ml.model import build_model


def test_the_ends_are_the_two_models_and_the_middle_is_linear():
    base = [np.array([0.0, 2.0], np.float32), np.array([[1.0]], np.float32)]
    other = [np.array([4.0, -2.0], np.float32), np.array([[3.0]], np.float32)]
    assert all(np.array_equal(a, b) for a, b in zip(blend_weights(base, other, 0.0), base))
    assert all(np.array_equal(a, b) for a, b in zip(blend_weights(base, other, 1.0), other))
    quarter = blend_weights(base, other, 0.25)
    assert np.allclose(quarter[0], [1.0, 1.0]) and np.allclose(quarter[1], [[1.5]])
    assert all(w.dtype == np.float32 for w in quarter)


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_alpha_outside_the_segment_is_refused(alpha):
    with pytest.raises(ValueError, match="alpha"):
        blend_weights([np.zeros(2)], [np.ones(2)], alpha)


def test_two_different_networks_are_refused():
    with pytest.raises(ValueError, match="same weights"):
        blend_weights([np.zeros(2)], [np.ones(3)], 0.5)


def test_the_saved_blend_reads_as_its_weights_say_and_its_report_names_both_parents(tmp_path):
    paths = []
    for seed, families in ((1, []), (2, ["Caveat", "Kalam"])):
        model = build_model(width=4, dense=8, dropout=0.0)
        rng = np.random.default_rng(seed)
        model.set_weights([rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in model.get_weights()])
        path = tmp_path / f"m{seed}.keras"
        model.save(path)
        path.with_suffix(".report.json").write_text(json.dumps({"name": "emnist_cnn", "font_families": families}))
        paths.append((model, path))
    images = np.random.default_rng(3).integers(0, 256, (20, 28, 28)).astype(np.uint8)
    labels = np.arange(20) % 62
    blended, report = blend(paths[0][1], paths[1][1], 0.3, images, labels, note="test")
    expected = blend_weights(paths[0][0].get_weights(), paths[1][0].get_weights(), 0.3)
    assert all(np.allclose(a, b) for a, b in zip(blended.get_weights(), expected))
    assert report["blend"]["alpha"] == 0.3 and report["font_families"] == ["Caveat", "Kalam"]
    assert report["other"]["font_families"] == ["Caveat", "Kalam"] and report["validation"]["n"] == 20
