"""A language's word list and a character trigram prior, for reading words in context.

Both come from ``wordfreq`` (its data ships inside the wheel: nothing is fetched at run time).
Letters are folded to lower case and every digit to ``#``; ``^`` starts a word and ``$``
ends it, so the trigram table also says how likely a word is to start or end with a letter.

Public:
    Lexicon: the words (lower case, letters only) with a rank-based log frequency, and the
        trigram log-probabilities.
    build_lexicon(words, ngram_words=None) -> Lexicon (any word list: tests use a toy one)
    load_lexicon(language="en", size=LEXICON_SIZE) -> Lexicon from wordfreq, cached per process

Only NumPy (and wordfreq when loading a language).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

# Words taken from wordfreq's list, most frequent first.
LEXICON_SIZE = 40000
# The symbols of the trigram model: 26 letters, any digit, start, end.
SYMBOLS = "abcdefghijklmnopqrstuvwxyz#^$"
START, END = SYMBOLS.index("^"), SYMBOLS.index("$")
_INDEX = {s: i for i, s in enumerate(SYMBOLS)}
# Add-k smoothing: an unseen trigram is rare, never impossible (codes such as "xq7" must stay readable).
SMOOTHING = 0.05
MAX_WORD = 32


def symbol(char: str) -> int:
    """The trigram symbol of one character (letters folded to lower case, digits to ``#``)."""
    if char.isdigit():
        return _INDEX["#"]
    return _INDEX.get(char.lower(), _INDEX["#"])


@dataclass(frozen=True)
class Lexicon:
    """``words``: lower-case word -> log prior (0 for the commonest, falling with log rank).
    ``trigram``: float32 (S, S, S) log P(c | a, b) over ``SYMBOLS``."""

    language: str
    words: dict[str, float]
    trigram: np.ndarray

    def word_score(self, text: str) -> float | None:
        """The word's log prior when ``text`` (any case) is in the list, else None."""
        return self.words.get(text.lower())


def build_lexicon(words: list[str], *, language: str = "", ngram_words: int | None = None) -> Lexicon:
    """A lexicon from ``words``, most frequent first (letters only are kept, folded to lower case).

    The trigram table counts each of the first ``ngram_words`` words once (types, not tokens:
    "the" would otherwise outweigh everything), with add-``SMOOTHING`` smoothing.
    """
    kept: dict[str, float] = {}
    for word in words:
        word = word.lower()
        if word.isascii() and word.isalpha() and len(word) <= MAX_WORD and word not in kept:
            kept[word] = -math.log(len(kept) + 1)
    size = len(SYMBOLS)
    counts = np.full((size, size, size), SMOOTHING, dtype=np.float64)
    # Digits were never in the letter-only list: give "#" after anything, and anything after
    # "#", the weight of a rare but ordinary letter so numbers and codes are not penalised twice.
    counts[:, :, _INDEX["#"]] += 0.5
    counts[:, _INDEX["#"], :] += 0.5
    counts[:, :, START] = 0.0  # nothing is followed by the start
    for word in list(kept)[:ngram_words]:
        seq = [START, START] + [_INDEX[c] for c in word] + [END]
        for a, b, c in zip(seq, seq[1:], seq[2:]):
            counts[a, b, c] += 1.0
    with np.errstate(divide="ignore"):
        trigram = np.log(counts / counts.sum(axis=2, keepdims=True)).astype(np.float32)
    return Lexicon(language=language, words=kept, trigram=trigram)


@functools.lru_cache(maxsize=4)
def load_lexicon(language: str = "en", size: int = LEXICON_SIZE) -> Lexicon:
    """wordfreq's ``size`` most frequent words of ``language`` (an ISO code such as "en", "fr").

    Raises:
        LookupError: wordfreq has no list for the language.
    """
    import wordfreq  # only the word path needs it: keep web start-up light

    words = wordfreq.top_n_list(language, size)
    if not words:
        raise LookupError(f"wordfreq has no word list for language {language!r}")
    return build_lexicon(words, language=language)
