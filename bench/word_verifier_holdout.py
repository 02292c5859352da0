"""Issue 18 exploration: choose the word-cut verifier's settings on a held-out slice of the fitting part.

    .venv/bin/python bench/word_verifier_holdout.py [--cache DIR] [--write PATH]

bench/word_segmentation.py --fit fits the verifier (``ml.word_cuts.fit_verifier``) on all of
its fitting part and chooses the cut weights on the same cases. Here the fitting part (the
same cases, seed 18) is split 3:1 by case (seed 0). The verifier is fitted on the larger slice
for each of hidden 16/32/64, L2 1e-4 to 1e-1 and 10 to 160 epochs. For each, the weights (CNN
factor 0-1, cost a character -3 to 3) are chosen by that bench's objective on the smaller
slice. The best, by that objective, is then reported once on the reporting part beside the
shipped ``ml/word_cuts.npz``; ``--write`` saves it (it is not shipped: bench/RESULTS.md).
``--word-weight W`` counts the two word kinds W times in the objective.
"""

import argparse
import itertools
import pickle
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import word_segmentation as ws  # noqa: E402

from ml.word_cuts import CutWeights, fit_verifier, load_cuts, save_cuts  # noqa: E402

SETTINGS = sorted(
    set(itertools.product((32, 16), (1e-3, 1e-2, 3e-2, 1e-1), (10, 20, 40)))
    | set(itertools.product((32, 64), (1e-4, 1e-3), (40, 80, 160)))
)
CNN_FACTORS = (0.0, 0.25, 0.5, 1.0)
PER_CHARACTER = (-3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0)


def read_part(part: int, cache: Path, read_inputs):
    """(cases, their reads) of bench/word_segmentation.py's fitting (0) or reporting (1) part."""
    path = cache / f"part{part}.pkl"
    if path.exists():
        with open(path, "rb") as handle:
            return pickle.load(handle)
    images, labels, lexicon, fonts, read = read_inputs()
    counts = (
        argparse.Namespace(pairs=1500, letters=400, words=400)
        if part == 0
        else argparse.Namespace(pairs=400, letters=400, words=200)
    )
    seed = 18 + part
    cases = ws.cases(counts, part, images, np.random.default_rng(seed))
    cases += ws.context_words(
        800 if part == 0 else 400, part, np.random.default_rng(seed), images, labels, lexicon, fonts
    )
    out = (cases, ws.read_cases(cases, read))
    with open(path, "wb") as handle:
        pickle.dump(out, handle)
    return out


def runs_of(cases, reads):
    features, truth = [], []
    for case, (pieces, found, _, run_feats, *_) in zip(cases, reads):
        if found is not None:
            features.append(run_feats)
            truth.append(ws.run_labels(case, pieces, found))
    features, truth = np.concatenate(features), np.concatenate(truth)
    return features[truth >= 0], truth[truth >= 0]


def best_weights(verifier, cases, reads, word_weight: float = 1.0):
    best = None
    for cnn, per_character in itertools.product(CNN_FACTORS, PER_CHARACTER):
        weights = CutWeights(per_character=per_character, cut=0.0, join=0.0, wide=0.0, cnn=cnn, verifier=1.0)
        value = ws.objective(ws.measure(ws.run(reads, weights, verifier)[0], cases), word_weight)
        if best is None or value > best[0]:
            best = (value, weights)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", default=None, help="keep the parts' reads here (default: a temp folder)")
    parser.add_argument("--write", default=None, help="save the chosen verifier and weights here")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "emnist"))
    parser.add_argument(
        "--word-weight", type=float, default=1.0, help="how many times the word kinds count in the objective"
    )
    args = parser.parse_args()
    cache = Path(args.cache or tempfile.mkdtemp(prefix="verifier-holdout-"))
    cache.mkdir(parents=True, exist_ok=True)

    def read_inputs():
        from ml.data import load_validation
        from ml.font_families import installed_fonts
        from ml.inference import load_predictor
        from ml.lexicon import load_lexicon
        from ml.preprocess import ink_to_emnist

        images, labels = load_validation(args.data_dir)
        predictor = load_predictor(ROOT / "ml" / "artifacts" / "emnist_cnn.keras")
        read = lambda inks: predictor.read(np.stack([ink_to_emnist(i) for i in inks]))  # noqa: E731
        return images, labels, load_lexicon("en"), installed_fonts(split="heldout"), read

    cases, reads = read_part(0, cache, read_inputs)
    order = np.random.default_rng(0).permutation(len(cases))
    fit_rows, choose_rows = sorted(order[: int(0.75 * len(cases))]), sorted(order[int(0.75 * len(cases)) :])
    x, y = runs_of([cases[i] for i in fit_rows], [reads[i] for i in fit_rows])
    held = [cases[i] for i in choose_rows], [reads[i] for i in choose_rows]
    chosen = None
    for hidden, l2, epochs in SETTINGS:
        verifier = fit_verifier(x, y, hidden=hidden, l2=l2, epochs=epochs)
        value, weights = best_weights(verifier, *held, word_weight=args.word_weight)
        print(f"hidden {hidden}, L2 {l2}, {epochs} epochs: held-out objective {value:.3f} with {weights}", flush=True)
        if chosen is None or value > chosen[0]:
            chosen = (value, weights, verifier, (hidden, l2, epochs))
    print(f"chosen: hidden, L2, epochs {chosen[3]}, {chosen[1]}")
    if args.write:
        save_cuts(args.write, chosen[1], chosen[2])
    cases, reads = read_part(1, cache, read_inputs)
    for name, (weights, verifier) in {"shipped": load_cuts(), "chosen on the held-out slice": chosen[1:3]}.items():
        found, seconds = ws.run(reads, weights, verifier)
        ws.report(name, ws.measure(found, cases), seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
