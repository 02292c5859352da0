"""Reading a word in context on tiny data: box geometry, the trigram lexicon, the beam search."""

import json

import numpy as np
import pytest

from ml.data import CLASSES
from ml.lexicon import END, START, SYMBOLS, build_lexicon, load_lexicon, symbol
from ml.word_context import CONTEXT_PATH, Context, Weights, load_context
from ml.word_geometry import FEATURES, GeometryModel, features

# "Hello" written with x-height 20 px, ascenders 30 px, on a baseline at y = 100.
HELLO = [[0, 70, 15, 100], [20, 80, 35, 100], [40, 70, 45, 100], [50, 70, 55, 100], [60, 80, 75, 100]]


def test_features_say_which_characters_are_tall_and_which_hang_below_the_baseline():
    f = features(HELLO + [[80, 80, 95, 110]])  # and a "g": x-height top, below the baseline
    assert f.shape == (6, len(FEATURES)) and f.dtype == np.float32
    height, bottom, top = f[:, 0], f[:, 1], f[:, 2]
    assert height[0] > height[1] and height[4] == height[1]  # h taller than e; e as tall as o
    assert bottom[5] > 0.3 and abs(bottom[0]) < 1e-6  # the g's bottom is below the baseline
    assert top[0] < top[1]  # the h's top is higher (smaller y) than the e's
    # Only relative sizes count: the same word written twice as large has the same features.
    assert np.allclose(features(np.array(HELLO) * 2), features(HELLO))


def tall_short_model() -> GeometryModel:
    """Fitted on boxes where "O" is always as tall as "H" and "o" as short as "e"."""
    rng = np.random.default_rng(0)
    feats, labels = [], []
    for _ in range(40):
        x, cap = rng.uniform(18, 22), rng.uniform(28, 32)
        boxes = [[0, 100 - cap, 10, 100], [20, 100 - x, 30, 100], [40, 100 - cap, 50, 100], [60, 100 - x, 70, 100]]
        feats.append(features(boxes))
        labels += [CLASSES.index(c) for c in "HoOe"]
    return GeometryModel.fit(np.concatenate(feats), np.array(labels), len(CLASSES))


def test_the_geometry_model_tells_a_tall_o_from_a_short_one():
    model = tall_short_model()
    post = model.log_posterior([[0, 70, 10, 100], [20, 80, 30, 100], [40, 70, 50, 100]])
    assert post.shape == (3, len(CLASSES))
    assert np.allclose(np.exp(post).sum(axis=1), 1, atol=1e-4)
    o, big_o = CLASSES.index("o"), CLASSES.index("O")
    assert post[2, big_o] > post[2, o] + 3 and post[1, o] > post[1, big_o] + 3
    # One character alone has nothing to compare with: no class is preferred.
    alone = model.log_posterior([[0, 0, 10, 30]])
    assert np.allclose(alone, alone[0, 0])


def test_a_class_seen_once_gets_the_spread_of_all_rows_and_the_floor_holds():
    feats = np.array([[0.0] * 6, [1.0] * 6, [0.5] * 6])
    model = GeometryModel.fit(feats, np.array([0, 0, 1]), 3)
    assert np.allclose(model.mean[0], 0.5) and np.allclose(model.mean[1], 0.5)  # class 1 seen once
    assert (model.var >= 0.004).all()
    assert np.allclose(GeometryModel.from_dict(model.to_dict()).mean, model.mean, atol=1e-4)


def test_the_trigram_prior_learns_spellings_and_keeps_the_unseen_possible():
    lexicon = build_lexicon(["cat", "cot", "dog", "Cat", "x-ray", "naïve"])
    assert list(lexicon.words) == ["cat", "cot", "dog"]  # lower case, letters only, once each
    assert lexicon.word_score("CAT") == 0.0 and lexicon.word_score("dog") < lexicon.word_score("cot")
    assert lexicon.word_score("cab") is None
    t = lexicon.trigram
    assert t.shape == (len(SYMBOLS),) * 3 and np.allclose(np.exp(t).sum(axis=2), 1, atol=1e-5)
    c, a, o = symbol("c"), symbol("a"), symbol("o")
    assert t[START, START, c] > t[START, START, a]  # words start with c or d here
    assert t[START, c, a] > t[START, c, symbol("q")] > -np.inf  # unseen, not impossible
    assert t[c, a, symbol("t")] > t[c, a, END]
    assert symbol("7") == symbol("0") == SYMBOLS.index("#") and symbol("C") == c and o != a


def toy_context(**weights) -> Context:
    return Context(
        lexicon=build_lexicon(["cat", "cot", "dog", "the"]),
        geometry=tall_short_model(),
        weights=Weights(**{"geometry": 1.0, "ngram": 0.3, "dictionary": 3.0, "frequency": 0.0, **weights}),
    )


LOW = [[0, 80, 10, 100], [20, 80, 30, 100], [40, 80, 50, 100]]  # three x-height boxes


def test_the_beam_search_prefers_the_dictionary_word_when_the_drawing_leaves_it_open():
    # The middle character is a toss-up between "a" and "u": "cat" is a word, "cut" is not here.
    tops = [[("c", 0.9), ("C", 0.05)], [("u", 0.5), ("a", 0.45)], [("t", 0.9), ("f", 0.05)]]
    readings = toy_context().decode(tops, LOW)
    assert readings[0].text == "cat" and len(readings) == 3
    assert [r.score for r in readings] == sorted((r.score for r in readings), reverse=True)
    assert 0 < readings[0].score <= 1 and len({r.text for r in readings}) == 3
    # Without the lexicon's help the drawing's own favourite wins.
    assert toy_context(dictionary=0.0, ngram=0.0).decode(tops, LOW)[0].text == "cut"


def test_a_non_word_the_drawing_clearly_shows_is_not_forced_into_the_dictionary():
    # "u" is 500 times likelier than "a": more than the bonus and the spelling prior make up.
    tops = [[("c", 0.95), ("C", 0.03)], [("u", 0.99), ("a", 0.002)], [("t", 0.95), ("f", 0.03)]]
    assert toy_context().decode(tops, LOW)[0].text == "cut"
    # A code: letters and digits the CNN is sure of stay as drawn.
    code = [[("A", 0.97), ("4", 0.01)], [("4", 0.96), ("A", 0.02)]]
    assert toy_context().decode(code, [[0, 70, 10, 100], [20, 70, 30, 100]])[0].text == "A4"


def test_size_decides_the_case_of_a_look_alike():
    # Two ellipses the CNN cannot tell apart, one as tall as a capital, one x-height short.
    tops = [[("0", 0.4), ("o", 0.3), ("O", 0.3)], [("0", 0.4), ("O", 0.3), ("o", 0.3)]]
    tall_then_short = [[20, 70, 30, 100], [40, 80, 50, 100]]
    context = toy_context(dictionary=0.0, ngram=0.0, case_switch=0.0, digit_switch=2.0)
    assert context.decode(tops, tall_then_short)[0].text == "Oo"
    assert context.decode(tops, [[20, 80, 30, 100], [40, 70, 50, 100]])[0].text == "oO"
    # Without the geometry, the CNN's favourite stands for both.
    assert toy_context(geometry=0.0, dictionary=0.0, ngram=0.0).decode(tops, tall_then_short)[0].text == "00"


def test_decode_checks_its_input():
    assert toy_context().decode([], []) == []
    with pytest.raises(ValueError, match="2 characters but 1 boxes"):
        toy_context().decode([[("a", 1.0)], [("b", 1.0)]], [[0, 0, 1, 1]])


def test_the_shipped_context_file_says_how_it_was_fitted_and_loads_with_english():
    data = json.loads(CONTEXT_PATH.read_text())
    assert data["fitted"]["by"].startswith("python bench/word_context.py --fit")
    assert np.asarray(data["geometry"]["mean"]).shape == (len(CLASSES), len(FEATURES))
    context = load_context()
    assert context.lexicon.language == "en" and len(context.lexicon.words) > 30000
    assert load_lexicon("en").word_score("hello") is not None
