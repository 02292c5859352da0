"""A word's best readings: each character's CNN top-k, its geometry, and the language around it.

For each character the candidates are its CNN top-k plus the look-alikes of its best three
(o/O/0, l/I/1, s/S, 5/S, ...: what one 28x28 image cannot decide), each scored

    log P_cnn(c)  +  geometry * log P_geo(c | box vs the word's other boxes)  -  capital [c is one]

(``geometry_uniform`` instead of ``geometry`` where the characters are all about as tall)

and a beam search over the word adds

    ngram * log P(c | two characters before)           (``ml.lexicon`` trigram, case folded)
    - case_switch      for a lower-case letter followed by a capital, or a capital followed
                       by a lower-case letter anywhere but after the first character
    - digit_switch     where letters and digits meet
    + dictionary + frequency * log prior               at the end, for a word of the lexicon
                       written lower case, Capitalised or ALL CAPITALS.

The dictionary term is a bounded bonus, never a constraint: a reading that is not a word wins
whenever the drawing favours it by more than the bonus, so numbers and codes stay readable.
Hypotheses still on the way to a dictionary word keep a beam of their own, so a word is not
pruned before the bonus can count. The weights are fitted on the word benchmark's fitting part
(``bench/word_context.py --fit``) and stored with the geometry in ``ml/word_context.json``.

Public:
    Weights, Reading, Context
    load_context(path=CONTEXT_PATH, language="en") -> Context (cached per process)
    Context.decode(tops, boxes, count=3) -> list[Reading], best first

Only NumPy (and wordfreq through ``ml.lexicon``). Never Django.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ml.data import CLASSES
from ml.evaluate import LOOKALIKE_PAIRS
from ml.lexicon import END, START, Lexicon, load_lexicon, symbol
from ml.word_geometry import GeometryModel, tells_case

CONTEXT_PATH = Path(__file__).resolve().parent / "word_context.json"
# Letters and digits that handwriting confuses, beyond ml.evaluate's case look-alikes.
EXTRA_LOOKALIKES = [("5", "S"), ("2", "Z"), ("8", "B"), ("9", "g"), ("9", "q"), ("6", "b")]
BEAM = 12
READINGS = 3
# A candidate missing from the stored top-k gets at most this probability (and at most half
# the lowest one the CNN gave): the top-k is all that is kept of its posterior.
MISSING_PROBABILITY = 1e-3
_CLASS_INDEX = {c: i for i, c in enumerate(CLASSES)}


def _lookalikes() -> dict[str, set[str]]:
    neighbours: dict[str, set[str]] = {c: {c} for c in CLASSES}
    for a, b in [*LOOKALIKE_PAIRS, *EXTRA_LOOKALIKES, *((c, c.upper()) for c in "abdefghnqrt")]:
        neighbours[a].add(b)
        neighbours[b].add(a)
    return neighbours


LOOKALIKES = _lookalikes()


@dataclass(frozen=True)
class Weights:
    geometry: float = 1.0
    # For a word whose characters are all about as tall (``tells_case`` False): "seams" and
    # "SEAMS" have the same boxes, so there the geometry counts for less.
    geometry_uniform: float = 0.25
    # Per capital letter: lower case is the commoner way to write.
    capital: float = 0.0
    ngram: float = 0.5
    case_switch: float = 3.0
    digit_switch: float = 1.5
    dictionary: float = 3.0
    frequency: float = 0.1


@dataclass(frozen=True)
class Reading:
    text: str
    # Share of the beam's probability mass (softmax of the log scores of every finished reading).
    score: float
    log_score: float


def _kind(char: str) -> str:
    return "d" if char.isdigit() else ("u" if char.isupper() else "l")


def _switch_cost(prev: str, kind: str, position: int, weights: Weights) -> float:
    if (prev == "d") != (kind == "d"):
        return weights.digit_switch
    if prev == "l" and kind == "u":
        return weights.case_switch
    if prev == "u" and kind == "l" and position > 1:
        return weights.case_switch
    return 0.0


def _is_cased_word(text: str) -> bool:
    """Lower case, Capitalised or ALL CAPITALS: the ways a dictionary word is written."""
    return text.islower() or text.isupper() or (text[0].isupper() and text[1:].islower())


@dataclass(frozen=True)
class Context:
    lexicon: Lexicon
    geometry: GeometryModel
    weights: Weights = field(default_factory=Weights)

    @functools.cached_property
    def prefixes(self) -> frozenset[str]:
        return frozenset(w[:i] for w in self.lexicon.words for i in range(1, len(w) + 1))

    def candidates(self, top: list[tuple[str, float]], geo: np.ndarray, weight: float) -> list[tuple[str, float]]:
        """(character, score) for one character: CNN log probability plus ``weight`` x geometry."""
        probs = {label: p for label, p in top}
        floor = min(MISSING_PROBABILITY, 0.5 * min(probs.values(), default=1.0))
        labels = set(probs)
        for label, _ in top[:3]:
            labels |= LOOKALIKES.get(label, set())
        out = []
        for label in labels:
            if label not in _CLASS_INDEX:
                continue
            p = max(probs.get(label, floor), 1e-9)
            score = math.log(p) + weight * float(geo[_CLASS_INDEX[label]])
            out.append((label, score - self.weights.capital * label.isupper()))
        return out

    def decode(self, tops: list[list[tuple[str, float]]], boxes, count: int = READINGS) -> list[Reading]:
        """The ``count`` best readings of one word.

        Args:
            tops: per character, left to right, its CNN (label, probability) pairs, best first.
            boxes: per character, [x0, y0, x1, y1] in the drawing's pixels.
        """
        if not tops:
            return []
        if len(boxes) != len(tops):
            raise ValueError(f"{len(tops)} characters but {len(boxes)} boxes")
        w, trigram = self.weights, self.lexicon.trigram
        geo = self.geometry.log_posterior(boxes)
        geo_weight = w.geometry if tells_case(boxes) else w.geometry_uniform
        # A hypothesis: (score, text, last two symbols, kind of its last character).
        beam = [(0.0, "", START, START, "")]
        for position, (top, g) in enumerate(zip(tops, geo)):
            options = self.candidates(top, g, geo_weight)
            grown = []
            for score, text, a, b, prev in beam:
                for char, char_score in options:
                    s = symbol(char)
                    kind = _kind(char)
                    total = score + char_score + w.ngram * float(trigram[a, b, s])
                    if prev:
                        total -= _switch_cost(prev, kind, position, w)
                    grown.append((total, text + char, b, s, kind))
            grown.sort(key=lambda h: -h[0])
            words = [h for h in grown if h[1].lower() in self.prefixes][:BEAM]
            kept = {h[1]: h for h in grown[:BEAM]}
            kept.update((h[1], h) for h in words)
            beam = list(kept.values())
        finished = []
        for score, text, a, b, _ in beam:
            score += w.ngram * float(trigram[a, b, END])
            prior = self.lexicon.word_score(text)
            if prior is not None and _is_cased_word(text):
                score += w.dictionary + w.frequency * prior
            finished.append((score, text))
        finished.sort(key=lambda h: -h[0])
        scores = np.array([s for s, _ in finished])
        shares = np.exp(scores - scores.max())
        shares /= shares.sum()
        return [
            Reading(text=text, score=round(float(share), 4), log_score=round(score, 3))
            for (score, text), share in zip(finished[:count], shares)
        ]


def context_dict(geometry: GeometryModel, weights: Weights, how: dict) -> dict:
    """What ``ml/word_context.json`` holds: how it was fitted, the weights, the geometry."""
    return {"fitted": how, "weights": asdict(weights), "geometry": geometry.to_dict()}


@functools.lru_cache(maxsize=4)
def load_context(path: str | Path = CONTEXT_PATH, language: str = "en") -> Context:
    """The fitted geometry and weights at ``path`` with ``language``'s lexicon, once per process.

    Raises:
        FileNotFoundError, KeyError, ValueError: a missing or malformed file.
        LookupError: no word list for the language.
    """
    data = json.loads(Path(path).read_text())
    return Context(
        lexicon=load_lexicon(language),
        geometry=GeometryModel.from_dict(data["geometry"]),
        weights=Weights(**data["weights"]),
    )
