import numpy as np

from ml.morphology import max_pool, morph_array, stroke_width


def naive_dilation(mask: np.ndarray, radius: int) -> np.ndarray:
    """A pixel is set when any pixel of the (2r+1)-square around it is (outside: unset)."""
    h, w = mask.shape
    out = np.zeros_like(mask)
    for y in range(h):
        for x in range(w):
            out[y, x] = mask[max(0, y - radius) : y + radius + 1, max(0, x - radius) : x + radius + 1].any()
    return out


def test_morph_array_with_maximum_is_binary_dilation_on_a_mask():
    # The segmentation's bridging of broken strokes relies on this (it has no dilation of its own).
    rng = np.random.default_rng(0)
    for shape in ((1, 1), (3, 17), (25, 9), (30, 30)):
        mask = rng.random(shape) < 0.08
        for radius in (1, 2, 3):
            grown = morph_array(mask, radius, np.maximum)
            assert grown.dtype == bool
            assert np.array_equal(grown, naive_dilation(mask, radius)), (shape, radius)


def test_morph_array_erodes_a_bar_from_every_side():
    a = np.zeros((12, 12), dtype=np.uint8)
    a[2:10, 3:9] = 200
    eroded = morph_array(a, 1, np.minimum)
    expected = np.zeros_like(a)
    expected[3:9, 4:8] = 200
    assert np.array_equal(eroded, expected)


def test_max_pool_keeps_a_pixel_in_a_partial_block():
    mask = np.zeros((5, 7), dtype=bool)
    mask[4, 6] = True  # in the last, partial block of both axes
    pooled = max_pool(mask, 3)
    assert pooled.shape == (2, 3)
    assert pooled.sum() == 1 and pooled[1, 2]


def test_stroke_width_of_a_long_bar_is_its_width():
    mask = np.zeros((20, 220), dtype=bool)
    mask[5:11, 10:210] = True  # 6 px wide, 200 px long
    assert abs(stroke_width(mask) - 6) < 0.3
