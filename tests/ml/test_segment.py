import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ml import segment
from ml.errors import BlankImageError, InvalidImageError, TooManyCharactersError
from ml.preprocess import image_bytes_to_emnist, ink_to_emnist, ink_to_png
from ml.segment import label_components, pieces_to_emnist, segment_image_bytes, segment_ink
from ml.synth import render_word_ink

PEN = 10


def draw(strokes, size=(600, 200), pen=PEN) -> np.ndarray:
    """uint8 ink (as a canvas's alpha) of strokes given as [[x, y], ...] lists; a 1-point stroke is a dot."""
    image = Image.new("L", size, 0)
    d = ImageDraw.Draw(image)
    for stroke in strokes:
        points = [tuple(p[:2]) for p in stroke]
        if len(points) == 1:
            (x, y), r = points[0], pen // 2 + 1
            d.ellipse([x - r, y - r, x + r, y + r], fill=255)
        else:
            d.line(points, fill=255, width=pen, joint="curve")
    return np.asarray(image)


I_AT = lambda x: [[[x, 80], [x, 170]], [[x, 45]]]  # noqa: E731 - stem, then the dot
T_AT = lambda x: [[[x + 25, 40], [x + 25, 170]], [[x, 40], [x + 50, 40]]]  # noqa: E731 - stem, then the bar
O_AT = lambda x: [[[x + 25 + 25 * np.cos(a), 125 + 45 * np.sin(a)] for a in np.linspace(0, 2 * np.pi, 40)]]  # noqa: E731


def flood_labels(mask):
    """Reference 8-connected labelling by breadth-first search (slow, obviously right)."""
    labels = np.zeros(mask.shape, dtype=int)
    count = 0
    for start in zip(*np.nonzero(mask)):
        if labels[start]:
            continue
        count += 1
        labels[start] = count
        queue = [start]
        while queue:
            y, x = queue.pop()
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not labels[ny, nx]:
                        labels[ny, nx] = count
                        queue.append((ny, nx))
    return labels, count


@pytest.mark.parametrize("seed", range(5))
def test_component_labels_match_a_flood_fill_on_random_masks(seed):
    mask = np.random.default_rng(seed).random((40, 50)) < 0.35
    labels, count = label_components(mask)
    expected, expected_count = flood_labels(mask)
    assert count == expected_count
    assert ((labels > 0) == mask).all()
    # Same partition: each expected component has exactly one label and vice versa.
    pairs = set(zip(labels[mask].tolist(), expected[mask].tolist()))
    assert len(pairs) == count


def test_a_snake_and_diagonal_contacts_are_one_component():
    mask = np.zeros((9, 9), dtype=bool)
    mask[0, :8] = mask[2, 1:] = mask[4, :8] = mask[6, 1:] = True
    mask[1, 7] = mask[3, 1] = mask[5, 7] = True  # the bends
    mask[7, 0] = True  # touches (6, 1) diagonally
    assert label_components(mask)[1] == 1
    assert label_components(np.zeros((3, 3), dtype=bool))[1] == 0


def test_strokes_group_into_characters_left_to_right_whatever_the_drawing_order():
    strokes = O_AT(300) + T_AT(160) + I_AT(50)  # drawn right to left
    found = segment_ink(draw(strokes), strokes)
    assert found.method == "strokes" and len(found.pieces) == 3
    assert [p.strokes for p in found.pieces] == [(3, 4), (1, 2), (0,)]
    assert [p.box[0] for p in found.pieces] == sorted(p.box[0] for p in found.pieces)
    # The i kept its dot and the T its bar.
    assert found.pieces[0].box[1] < 45 and found.pieces[1].box[2] - found.pieces[1].box[0] >= 50


def test_a_dot_drawn_a_little_beside_its_stem_still_joins_it():
    strokes = [[[50, 80], [50, 170]], [[62, 45]], [[150, 40], [150, 170]]]  # dot 12 px right of the "i"
    found = segment_ink(draw(strokes), strokes)
    assert [p.strokes for p in found.pieces] == [(0, 1), (2,)]


def test_a_letter_drawn_in_touching_strokes_side_by_side_is_one_character():
    # A "k": the stem, then the arms, whose corner meets the stem (their column ranges overlap
    # by less than half of the narrower one's width); an "E" whose bars start on the stem's right edge.
    k = [[[50, 40], [50, 170]], [[100, 80], [56, 130], [100, 170]]]
    e = [[[200, 40], [200, 170]], [[208, 40], [250, 40]], [[208, 105], [245, 105]], [[208, 170], [250, 170]]]
    found = segment_ink(draw(k + e), k + e)
    assert found.method == "strokes"
    assert [p.strokes for p in found.pieces] == [(0, 1), (2, 3, 4, 5)]


def test_strokes_that_do_not_touch_stay_apart():
    # The same shapes with the arms and the bars a pen width and a half clear of their stems.
    k = [[[50, 40], [50, 170]], [[110, 80], [65, 130], [110, 170]]]
    n = [[[200, 80], [200, 170]], [[215, 90], [240, 80], [255, 100], [255, 170]]]
    found = segment_ink(draw(k + n), k + n)
    assert [p.strokes for p in found.pieces] == [(0,), (1,), (2,), (3,)]


def test_touching_strokes_come_in_sets_in_drawing_order():
    from ml.strokes import touching_strokes

    line = lambda x0, x1: np.array([[x0, 10.0], [x1, 10.0]])  # noqa: E731
    # 0 and 2 meet end to end (a pen width apart), 1 is far off, 3 crosses 1.
    strokes = [line(0, 20), np.array([[100.0, 0.0], [100.0, 40.0]]), line(30, 50), line(90, 110)]
    assert touching_strokes(strokes, pen=10) == [[0, 2], [1, 3]]
    assert touching_strokes(strokes, pen=4) == [[0], [1, 3], [2]]
    assert touching_strokes([np.array([[5.0, 5.0]])], pen=3) == [[0]]  # a dot alone


def test_without_strokes_components_give_the_same_characters():
    strokes = I_AT(50) + T_AT(160) + O_AT(300)
    ink = draw(strokes)
    by_strokes, by_components = segment_ink(ink, strokes), segment_ink(ink)
    assert by_components.method == "components"
    assert [p.box for p in by_components.pieces] == [p.box for p in by_strokes.pieces]
    for a, b in zip(by_components.pieces, by_strokes.pieces):
        # Pillow's wide polylines leave a few stray pixels at sharp joints, outside the
        # stroke masks: allow those.
        assert np.count_nonzero(a.ink != b.ink) <= 0.01 * np.count_nonzero(a.ink)


def test_a_broken_stroke_stays_one_character_and_column_gaps_split():
    ink = draw([[[50, 40], [50, 100]], [[50, 110], [50, 170]], [[90, 40], [90, 170]]])
    found = segment_ink(ink)
    assert len(found.pieces) == 2
    assert found.pieces[0].box[1] < 40 and found.pieces[0].box[3] > 170


def test_a_detached_flag_or_broken_off_stroke_joins_the_character_it_touches():
    # A "5" whose flag was drawn apart and sticks out to the right, then an "h" whose arch
    # broke off its stem, then an "l": three characters, not five.
    five = [[[75, 40], [125, 40]], [[50, 45], [45, 100], [80, 95], [90, 130], [70, 165], [40, 160]]]
    h = [[[160, 40], [160, 170]], [[172, 125], [190, 115], [205, 125], [205, 150]]]
    ell = [[[270, 40], [270, 170]]]
    ink = draw(five + h + ell)
    assert len(segment_ink(ink).pieces) == 3
    assert [p.strokes for p in segment_ink(ink, five + h + ell).pieces] == [(0, 1), (2, 3), (4,)]


def test_words_rendered_from_28x28_images_split_back_into_their_characters():
    glyphs = np.zeros((3, 28, 28), dtype=np.uint8)  # EMNIST orientation: [column, row]
    glyphs[0, 12:16, 4:24] = 255  # a bar
    glyphs[1, 6:22, 6:10] = glyphs[1, 6:22, 18:22] = glyphs[1, 6:10, 6:22] = glyphs[1, 18:22, 6:22] = 255  # a ring
    glyphs[2, 4:24, 12:16] = 255  # a dash
    for seed in range(5):
        ink, boxes = render_word_ink(glyphs, np.random.default_rng(seed))
        found = segment_ink(ink)
        assert len(found.pieces) == 3
        for piece, box in zip(found.pieces, boxes):
            assert np.abs(np.array(piece.box) - np.array(box)).max() <= 2


def test_each_character_gets_only_its_own_ink_when_boxes_overlap():
    # A "T" whose bar reaches over the next character's left edge, not touching it.
    strokes = [[[30, 40], [130, 40]], [[80, 40], [80, 170]], [[120, 90], [120, 170], [170, 170]]]
    ink = draw(strokes)
    for found in (segment_ink(ink, strokes), segment_ink(ink)):
        assert len(found.pieces) == 2
        t, l_ = found.pieces
        assert t.box[2] > l_.box[0]  # the boxes overlap...
        x_overlap = slice(l_.box[0] - t.box[0], t.box[2] - t.box[0])
        assert t.ink[80 - t.box[1] :, x_overlap].max() == 0  # ...but the T's crop has none of the L's ink
        # and the L's crop reads as the L drawn alone.
        alone = draw([strokes[2]])
        assert np.abs(ink_to_emnist(l_.ink).astype(int) - ink_to_emnist(alone).astype(int)).mean() < 1


def test_a_word_character_reads_like_the_same_character_drawn_alone():
    strokes = I_AT(50) + T_AT(160) + O_AT(300)
    inputs = pieces_to_emnist(segment_ink(draw(strokes), strokes).pieces)
    alone = ink_to_emnist(draw(T_AT(160)))
    assert inputs.shape == (3, 28, 28) and inputs.dtype == np.uint8
    assert np.abs(inputs[1].astype(int) - alone.astype(int)).mean() < 1


def test_a_lone_speck_is_not_a_character():
    strokes = T_AT(50) + [[[400, 100]]] + O_AT(200)
    ink = draw(strokes, pen=4)
    assert len(segment_ink(ink).pieces) == 2
    assert len(segment_ink(ink, strokes).pieces) == 2


def test_paper_grain_is_ignored_and_the_work_stays_bounded():
    ink = draw(I_AT(50) + T_AT(160) + O_AT(300)).copy()
    rng = np.random.default_rng(0)
    ys, xs = rng.integers(0, 200, 300), rng.integers(0, 600, 300)
    ink[ys, xs] = np.maximum(ink[ys, xs], 200)  # 300 single-pixel specks
    assert len(segment_ink(ink).pieces) == 3
    noise = (rng.random((400, 1000)) < 0.01).astype(np.float32)  # nothing but specks of the pen's size
    with pytest.raises(TooManyCharactersError):
        segment_ink(noise)


def test_strokes_in_css_pixels_of_a_high_density_canvas_are_scaled_to_the_image():
    strokes = I_AT(50) + T_AT(160) + O_AT(300)
    ink = draw(strokes)
    for factor in (2, 1.5, 0.5):  # devicePixelRatio 2, 1.5; a canvas exported at half size
        css = [[[x / factor, y / factor] for x, y in stroke] for stroke in strokes]
        found = segment_ink(ink, css)
        assert found.method == "strokes" and abs(found.stroke_scale - factor) < 0.05 * factor
        assert [p.strokes for p in found.pieces] == [(0, 1), (2, 3), (4,)]


def test_strokes_that_do_not_match_the_image_fall_back_to_components():
    strokes = I_AT(50) + T_AT(160) + O_AT(300)
    ink = draw(strokes)
    shifted = [[[x + 100, y] for x, y in stroke] for stroke in strokes]  # inside the image, wrong place
    outside = [[[x * 3, y * 3] for x, y in stroke] for stroke in strokes[:2]]  # no scale maps them on the ink
    for other in (shifted, outside, [[]], [[["a", 1]]], [[[float("nan"), 1]]]):
        found = segment_ink(ink, other)
        assert found.method == "components" and len(found.pieces) == 3


def test_a_large_upload_is_segmented_at_reduced_resolution_with_boxes_in_its_pixels():
    ink = np.zeros((600, 3600), dtype=np.float32)
    for k in range(4):
        ink[100:500, 200 + 900 * k : 260 + 900 * k] = 1.0
    found = segment_ink(ink)
    assert len(found.pieces) == 4
    for k, piece in enumerate(found.pieces):
        x0, y0, x1, y1 = piece.box
        assert abs(x0 - (200 + 900 * k)) <= 4 and abs(x1 - (260 + 900 * k)) <= 4 and abs(y0 - 100) <= 4


def test_image_bytes_are_decoded_like_single_characters():
    strokes = I_AT(50) + T_AT(160)
    png = ink_to_png(draw(strokes).astype(np.float32) / 255)
    found = segment_image_bytes(png, strokes)
    assert found.method == "strokes" and (found.width, found.height) == (600, 200)
    single = image_bytes_to_emnist(ink_to_png(draw(T_AT(160)).astype(np.float32) / 255))
    assert np.abs(pieces_to_emnist(found.pieces)[1].astype(int) - single.astype(int)).mean() < 1


def test_a_piece_png_is_its_ink_in_alpha():
    found = segment_ink(draw(T_AT(50)))
    image = Image.open(io.BytesIO(segment.ink_png(found.pieces[0].ink)))
    assert image.mode == "RGBA" and image.size == found.pieces[0].ink.shape[::-1]
    assert (np.asarray(image.getchannel("A")) == found.pieces[0].ink).all()


def test_limits_and_bad_input_raise_ml_errors():
    with pytest.raises(BlankImageError):
        segment_ink(np.zeros((100, 300), dtype=np.uint8))
    with pytest.raises(InvalidImageError):
        segment_ink(np.zeros((3, 3, 3)))
    bars = [[[20 + 30 * k, 40], [20 + 30 * k, 170]] for k in range(33)]
    ink = draw(bars, size=(1040, 200))
    with pytest.raises(TooManyCharactersError, match="33"):
        segment_ink(ink)
    with pytest.raises(TooManyCharactersError):
        segment_ink(ink, bars)
    assert len(segment_ink(ink, max_characters=33).pieces) == 33
    with pytest.raises(InvalidImageError):
        segment_image_bytes(b"not an image")
