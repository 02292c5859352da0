"""Canvas fidelity: accuracy on validation images drawn as canvas PNGs vs on the raw 28x28.

    python bench/canvas_fidelity.py [--model ml/artifacts/emnist_cnn.keras] [--n 5000]

Each validation image is upscaled, thinned or thickened, placed off-centre on a
transparent 280-480 px canvas and encoded as an RGBA PNG (``ml.synth``), then sent
through ``ml.preprocess.image_bytes_to_emnist`` exactly as the site does.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.data import load_validation  # noqa: E402
from ml.inference import load_predictor  # noqa: E402
from ml.preprocess import image_bytes_to_emnist  # noqa: E402
from ml.synth import render_canvas_png  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="ml/artifacts/emnist_cnn.keras")
    parser.add_argument("--data-dir", default="../shared/data/emnist")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    images, labels = load_validation(args.data_dir)
    rng = np.random.default_rng(args.seed)
    rows = np.sort(rng.permutation(len(images))[: args.n])
    images, labels = images[rows], labels[rows]
    predictor = load_predictor(args.model)
    raw = predictor.probabilities(images).argmax(axis=1) == labels
    through = np.stack([image_bytes_to_emnist(render_canvas_png(img, rng)) for img in images])
    canvas = predictor.probabilities(through).argmax(axis=1) == labels
    print(f"n={len(labels)}  raw 28x28 top1 {raw.mean():.2%}  canvas PNG top1 {canvas.mean():.2%}  "
          f"gap {100 * (raw.mean() - canvas.mean()):+.2f} points")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
