"""Canvas fidelity: accuracy on validation images drawn as canvas PNGs vs on the raw 28x28.

    python bench/canvas_fidelity.py [--model ml/artifacts/emnist_cnn.keras] [--n 5000] [--by-stroke]

Each validation image is upscaled, thinned or thickened, placed off-centre on a
transparent 280-480 px canvas and encoded as an RGBA PNG (``ml.synth``), then sent
through ``ml.preprocess.image_bytes_to_emnist`` exactly as the site does.

``--by-stroke`` then draws the same images again once per stroke width (thin, same,
thick), and prints for each the gap and the label pairs behind it: "lost" counts images
the model reads right raw and wrong as a drawing (true -> read), "won" the reverse.
"""

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.data import CLASSES, load_validation  # noqa: E402
from ml.inference import load_predictor  # noqa: E402
from ml.preprocess import image_bytes_to_emnist  # noqa: E402
from ml.synth import STROKES, render_canvas_png  # noqa: E402


def read_drawings(predictor, images: np.ndarray, rng: np.random.Generator, stroke: str | None = None) -> np.ndarray:
    """The class the model reads for each image drawn as a canvas PNG and sent through ``ml.preprocess``."""
    drawn = np.stack([image_bytes_to_emnist(render_canvas_png(img, rng, stroke=stroke)) for img in images])
    return predictor.probabilities(drawn).argmax(axis=1)


def pair_counts(labels: np.ndarray, read: np.ndarray, mask: np.ndarray) -> collections.Counter:
    """(true class, class read) of the rows in ``mask``."""
    return collections.Counter((CLASSES[t], CLASSES[r]) for t, r in zip(labels[mask], read[mask]))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="ml/artifacts/emnist_cnn.keras")
    parser.add_argument("--data-dir", default="../shared/data/emnist")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--by-stroke", action="store_true", help="also the gap per stroke width, and the pairs behind it"
    )
    args = parser.parse_args()
    images, labels = load_validation(args.data_dir)
    rng = np.random.default_rng(args.seed)
    rows = np.sort(rng.permutation(len(images))[: args.n])
    images, labels = images[rows], labels[rows]
    predictor = load_predictor(args.model)
    raw_read = predictor.probabilities(images).argmax(axis=1)
    raw = raw_read == labels
    canvas = read_drawings(predictor, images, rng) == labels
    print(
        f"n={len(labels)}  raw 28x28 top1 {raw.mean():.2%}  canvas PNG top1 {canvas.mean():.2%}  "
        f"gap {100 * (raw.mean() - canvas.mean()):+.2f} points"
    )
    if not args.by_stroke:
        return 0
    for index, stroke in enumerate(STROKES):
        read = read_drawings(predictor, images, np.random.default_rng([args.seed, index]), stroke)
        right = read == labels
        lost, won = pair_counts(labels, read, raw & ~right), pair_counts(labels, raw_read, right & ~raw)
        print(f"  {stroke:5s}  canvas PNG top1 {right.mean():.2%}  gap {100 * (raw.mean() - right.mean()):+.2f} points")
        print(f"         lost {sum(lost.values())}: " + ", ".join(f"{t}->{r} {c}" for (t, r), c in lost.most_common(8)))
        print(f"         won  {sum(won.values())}: " + ", ".join(f"{t}->{r} {c}" for (t, r), c in won.most_common(8)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
