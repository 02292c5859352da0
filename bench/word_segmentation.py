"""Splitting a word where it is hard: touching characters, and letters drawn in several strokes.

    python bench/word_segmentation.py [--pairs 600] [--letters 400] [--seed 18]

Two measurements of the site's segmentation (``ml.segment.segment_image_bytes``), as the word
path calls it:

- Joined pairs: two EMNIST validation images (odd rows: the reporting part of
  bench/word_context.py) written side by side at one height, the second moved left until the
  inks overlap by 5-30% of the narrower character's width, so they touch. Sent as a PNG
  without strokes (an upload). Split right = exactly two pieces, each holding most of its own
  character's ink.
- Several-stroke letters: m, n, k and E drawn on a canvas-like image as separate strokes side
  by side (m: a stem and two arches, n: a stem and an arch, k: a stem and the two arms in one
  stroke, E: a stem and three bars), each later stroke starting at the end of the one before,
  give or take 15% of the letter's width; the strokes are sent. Over-split = more than one piece.

Targets (issue 18): at least 80% of joined pairs split right; at most 2% of several-stroke
letters over-split.

Three segmentations are reported on the reporting part: ``ml.segment`` alone (the site's),
``ml.word_cuts.resegment`` with the CNN-only costs (``CUT_WEIGHTS``), and with the shipped
verifier (``ml/word_cuts.npz``). ``--fit`` fits the verifier and its weights on the fitting
part (``--fit-pairs``, ``--fit-words``: more cases than are reported) and writes the file.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from word_context import Inks, make_words, place_word  # noqa: E402

from ml.data import load_validation  # noqa: E402
from ml.font_families import installed_fonts  # noqa: E402
from ml.inference import load_predictor  # noqa: E402
from ml.lexicon import load_lexicon  # noqa: E402
from ml.preprocess import ink_to_emnist, ink_to_png  # noqa: E402
from ml.segment import segment_image_bytes  # noqa: E402
from ml.synth import render_character_ink  # noqa: E402
from ml.word_cuts import (  # noqa: E402
    CUT_WEIGHTS,
    CUTS_PATH,
    CutWeights,
    candidates,
    choose,
    fit_verifier,
    load_cuts,
    log_confidence,
    run_features,
    save_cuts,
)


def crop(ink):
    rows, cols = np.flatnonzero(ink.max(axis=1) > 0.1), np.flatnonzero(ink.max(axis=0) > 0.1)
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def joined_pair(a, b, rng, height=80):
    """Float ink of two characters touching, and the column where b's ink begins."""
    inks = []
    for image in (a, b):
        ink = crop(render_character_ink(image, rng, 120))
        width = max(2, round(ink.shape[1] * height / ink.shape[0]))
        inks.append(np.asarray(Image.fromarray(ink, mode="F").resize((width, height), Image.Resampling.BILINEAR)))
    overlap = round(rng.uniform(0.05, 0.3) * min(i.shape[1] for i in inks))
    left = 30 + inks[0].shape[1] - overlap
    out = np.zeros((height + 60, left + inks[1].shape[1] + 30), dtype=np.float32)
    out[30 : 30 + height, 30 : 30 + inks[0].shape[1]] = inks[0]
    region = out[30 : 30 + height, left : left + inks[1].shape[1]]
    np.maximum(region, inks[1], out=region)
    return np.clip(out, 0, 1), left, inks


def touching(out) -> bool:
    """Whether the pair's ink is one connected blob (else the pair is not joined)."""
    from ml.segment import label_components

    _, count = label_components(out > 0.5)
    return count == 1


def several_strokes(letter: str, rng, size=90, pen=8):
    """(PNG bytes, strokes) of ``letter`` drawn as side-by-side strokes on a canvas-like image."""
    x0, y0, w, h = 40, 40, size * (1.3 if letter == "m" else 0.8), size
    jitter = lambda: rng.uniform(-0.15, 0.15) * w  # noqa: E731
    top, bottom = y0, y0 + h
    if letter in "mn":
        arches = 2 if letter == "m" else 1
        strokes = [[[x0, top], [x0, bottom]]]
        step = w / arches
        start = x0
        for _ in range(arches):
            s = start + jitter()
            # An arch over the top, from half-way up the stroke before down to the baseline.
            arch = [[s + step * t, top + h * (1 - np.sin(np.pi * t) ** 0.5)] for t in np.linspace(0.1, 1.0, 12)]
            strokes.append(arch)
            start = s + step
    elif letter == "k":
        s = x0 + jitter() * 0.5
        strokes = [
            [[x0, top], [x0, bottom]],
            [[s + w * 0.8, top + h * 0.3], [s + 2, top + h * 0.62], [s + w * 0.8, bottom]],
        ]
    else:  # E
        strokes = [[[x0, top], [x0, bottom]]]
        for y in (top, (top + bottom) / 2, bottom):
            s = x0 + abs(jitter()) * 0.5
            strokes.append([[s, y], [s + w * 0.8, y]])
    width, height = int(x0 + w * 1.6 + 60), int(bottom + 50)
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        draw.line([tuple(p) for p in stroke], fill=(0, 0, 0, 255), width=pen, joint="curve")
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue(), [[[round(x, 1), round(y, 1)] for x, y in s] for s in strokes]


def cases(args, part: int, images, rng):
    """The three sets of one part: joined pairs, several-stroke letters, ordinary spaced words.

    Each case is (png, strokes or None, expected piece count, column of the join or None, width
    of the narrower character or None, kind)."""
    rows = rng.permutation(np.flatnonzero(np.arange(len(images)) % 2 == part))
    out = []
    for i in range(args.pairs):
        ink, left, inks = joined_pair(images[rows[2 * i]], images[rows[2 * i + 1]], rng)
        if touching(ink):
            out.append((ink_to_png(ink), None, 2, left, min(i.shape[1] for i in inks), "pair"))
    for i in range(args.letters):
        png, strokes = several_strokes("mnkE"[i % 4], rng)
        out.append((png, strokes, 1, None, None, "letter"))
    offset = 2 * args.pairs
    for _ in range(args.words):
        n = int(rng.integers(3, 7))
        chosen = images[rows[offset : offset + n]]
        offset += n
        text = "o" * n  # every character at x-height: only the spacing matters here
        inks = [render_character_ink(image, rng, 90) for image in chosen]
        ink = place_word(inks, text, rng, int(rng.choice([24, 36, 56])))
        out.append((ink_to_png(ink), None, n, None, None, "word"))
    return out


def context_words(count: int, part: int, rng, images, labels, lexicon, fonts):
    """Dictionary words and non-words as bench/word_context.py draws them (real sizes and
    baselines, a quarter in held-out fonts; its parts), as cases of kind "cword" whose fourth
    field is each character's ink columns."""
    inks = Inks(images, labels, part, fonts, rng)
    out = []
    for text, _ in make_words(count, part, rng, lexicon):
        size = int(rng.choice([24, 36, 56]))
        spans = []
        ink = place_word(inks.word(text, font=bool(rng.random() < 0.25)), text, rng, size, spans=spans)
        out.append((ink_to_png(ink), None, len(text), spans, None, "cword"))
    return out


def measure(found, cases) -> dict:
    right = {kind: 0 for *_, kind in cases}
    total = dict(right)
    for pieces, (_, _, expected, left, narrow, kind) in zip(found, cases):
        total[kind] += 1
        ok = len(pieces) == expected
        if ok and kind == "pair":
            # The cut within 20% of the narrower character's width of where the two meet.
            ok = abs(pieces[1].box[0] - left) <= 0.2 * narrow
        right[kind] += ok
    return {k: (right[k], total[k]) for k in right}


def read_cases(cases, read):
    """Each case through ml.segment and the CNN: (pieces, candidates, log confidences, run
    features, seconds to segment, seconds to segment and read)."""
    out = []
    for png, strokes, *_ in cases:
        started = time.perf_counter()
        pieces = segment_image_bytes(png, strokes).pieces
        segmented = time.perf_counter() - started
        found = candidates(pieces)
        log_best = features = None
        if found:
            probabilities, embeddings = read([p.ink for p in found.pieces])
            log_best, features = log_confidence(probabilities), run_features(found, probabilities, embeddings)
        out.append((pieces, found, log_best, features, segmented, time.perf_counter() - started))
    return out


def run_labels(case, pieces, found) -> np.ndarray:
    """Per candidate run: 1 if it is exactly one character of the case, 0 if not, -1 unknown
    (a spaced word that ml.segment split wrongly)."""
    _, _, expected, left, narrow, kind = case
    spans = [(p.box[0], p.box[2]) for p in found.pieces]
    if kind == "pair" and len(pieces) == 1:
        x0, x1, tol = pieces[0].box[0], pieces[0].box[2], 0.2 * narrow
        truth = [(x0, left), (left, x1)]
        return np.array([any(abs(a - ta) <= tol and abs(b - tb) <= tol for ta, tb in truth) for a, b in spans], int)
    if kind == "letter":
        whole = (min(p.box[0] for p in pieces), max(p.box[2] for p in pieces))
        return np.array([span == whole for span in spans], int)
    if kind == "word" and len(pieces) == expected:
        truth = {(p.box[0], p.box[2]) for p in pieces}
        return np.array([span in truth for span in spans], int)
    if kind == "cword":  # the characters' own columns, give or take a pixel of the crop and 15%
        truth = left
        return np.array(
            [any(max(abs(a - ta), abs(b - tb)) <= 2 + 0.15 * (tb - ta) for ta, tb in truth) for a, b in spans], int
        )
    return np.full(len(spans), -1)


def run(read_out, weights, verifier=None):
    """The pieces chosen with ``weights`` (None: ml.segment's alone) and the seconds each took."""
    found, seconds = [], []
    for pieces, cands, log_best, features, segmented, total in read_out:
        if weights is None or cands is None:
            found.append(pieces)
            seconds.append(segmented if weights is None else total)
        else:
            started = time.perf_counter()
            log_whole = verifier.log_whole(features) if verifier is not None else None
            found.append(choose(cands, log_best, weights, log_whole))
            seconds.append(total + time.perf_counter() - started)
    return found, seconds


def report(name, result, seconds):
    (pr, pt), (lr, lt), (wr, wt) = result["pair"], result["letter"], result["word"]
    cr, ct = result.get("cword", (0, 0))
    print(
        f"{name:<34} joined pairs split right {pr}/{pt} = {pr / max(pt, 1):.1%}; several-stroke letters over-split "
        f"{lt - lr}/{lt} = {(lt - lr) / max(lt, 1):.1%}; spaced words split right {wr}/{wt} = {wr / max(wt, 1):.1%}; "
        f"words at real sizes split right {cr}/{ct} = {cr / max(ct, 1):.1%}; "
        f"median {1000 * np.median(seconds):.1f} ms, p95 {1000 * np.percentile(seconds, 95):.1f} ms a drawing"
    )


def objective(result, word_weight: float = 1.0) -> float:
    """Each kind's share right, summed; the words' kinds (spaced, at real sizes) counted
    ``word_weight`` times (bench/word_verifier_holdout.py --word-weight)."""
    return sum((word_weight if kind in ("word", "cword") else 1.0) * r / max(t, 1) for kind, (r, t) in result.items())


def fit(args, images, labels, lexicon, fonts, read):
    """The verifier on the fitting part's candidate runs, then its weights by a grid search."""
    fit_args = argparse.Namespace(pairs=args.fit_pairs, letters=args.letters, words=args.fit_words)
    fitting = cases(fit_args, 0, images, np.random.default_rng(args.seed))
    rng = np.random.default_rng(args.seed)
    fitting += context_words(args.fit_context_words, 0, rng, images, labels, lexicon, fonts)
    fitting_read = read_cases(fitting, read)
    features, truth = [], []
    for case, (pieces, found, _, run_feats, *_) in zip(fitting, fitting_read):
        if found is not None:
            features.append(run_feats)
            truth.append(run_labels(case, pieces, found))
    features, truth = np.concatenate(features), np.concatenate(truth)
    known = truth >= 0
    verifier = fit_verifier(features[known], truth[known])
    print(f"verifier fitted on {known.sum()} runs ({truth[known].sum()} one character) of {len(fitting)} cases")
    best, weights = -1.0, None
    for cnn in (0.0, 0.25, 0.5, 1.0):
        for per_character in (0.0, 0.5, 1.0, 2.0, 3.0):
            trial = CutWeights(per_character=per_character, cut=0.0, join=0.0, wide=0.0, cnn=cnn, verifier=1.0)
            got = objective(measure(run(fitting_read, trial, verifier)[0], fitting))
            if got > best:
                best, weights = got, trial
    print(f"fitted {weights} (objective {best:.3f} on the fitting part)")
    return weights, verifier


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="ml/artifacts/emnist_cnn.keras")
    parser.add_argument("--data-dir", default="../shared/data/emnist")
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--letters", type=int, default=400)
    parser.add_argument("--words", type=int, default=200)
    parser.add_argument("--context-words", type=int, default=400, help="words at real sizes (bench/word_context.py)")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--fit", action="store_true", help=f"fit the verifier and its weights, write {CUTS_PATH.name}")
    parser.add_argument("--fit-pairs", type=int, default=1500)
    parser.add_argument("--fit-words", type=int, default=400)
    parser.add_argument("--fit-context-words", type=int, default=800)
    args = parser.parse_args()
    images, labels = load_validation(args.data_dir)
    lexicon, fonts = load_lexicon("en"), installed_fonts(split="heldout")
    predictor = load_predictor(args.model)
    read = lambda inks: predictor.read(np.stack([ink_to_emnist(i) for i in inks]))  # noqa: E731
    if args.fit:
        weights, verifier = fit(args, images, labels, lexicon, fonts, read)
        save_cuts(CUTS_PATH, weights, verifier)
        print(f"wrote {CUTS_PATH}")
    weights, verifier = load_cuts()
    reporting = cases(args, 1, images, np.random.default_rng(args.seed + 1))
    rng = np.random.default_rng(args.seed + 1)
    reporting += context_words(args.context_words, 1, rng, images, labels, lexicon, fonts)
    reporting_read = read_cases(reporting, read)
    found, seconds = run(reporting_read, None)
    report("ml.segment alone (today)", measure(found, reporting), seconds)
    found, seconds = run(reporting_read, CUT_WEIGHTS)
    report(f"with resegment, CNN only {CUT_WEIGHTS}", measure(found, reporting), seconds)
    found, seconds = run(reporting_read, weights, verifier)
    report(f"with resegment and the verifier {weights}", measure(found, reporting), seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
