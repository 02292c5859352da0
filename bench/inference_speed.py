"""Inference speed on this machine: one 280x280 canvas PNG -> top-5, and the batch path.

    python bench/inference_speed.py [--model ml/artifacts/emnist_cnn.keras]

Single image: PNG bytes -> ml.preprocess.image_bytes_to_emnist -> Predictor.predict(k=5),
timed per call after a warm-up; the median and p95 are reported. Batch: uint8 28x28
validation images through Predictor.predict_batch (the Lite batch interpreter on every core),
images per second. This machine's speed varies from run to run by up to a fifth: run it twice.
"""

import argparse
import sys
import time
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
    parser.add_argument("--singles", type=int, default=500)
    parser.add_argument("--batch", type=int, default=10000)
    args = parser.parse_args()
    images, _ = load_validation(args.data_dir)
    rng = np.random.default_rng(0)
    pngs = [render_canvas_png(images[i], rng, canvas=280) for i in range(args.singles)]
    predictor = load_predictor(args.model)

    for png in pngs[:50]:  # warm-up
        predictor.predict(image_bytes_to_emnist(png), k=5)
    pre, total = [], []
    for png in pngs:
        t0 = time.perf_counter()
        x = image_bytes_to_emnist(png)
        t1 = time.perf_counter()
        predictor.predict(x, k=5)
        t2 = time.perf_counter()
        pre.append(t1 - t0)
        total.append(t2 - t0)
    ms = lambda v, q: 1000 * float(np.percentile(v, q))  # noqa: E731
    print(f"single 280x280 PNG -> top-5 ({predictor.single_path}): median {ms(total, 50):.2f} ms, "
          f"p95 {ms(total, 95):.2f} ms (preprocessing median {ms(pre, 50):.2f} ms), n={len(total)}")

    batch = np.resize(images, (args.batch, 28, 28))
    predictor.predict_batch(batch[:2048], k=5)  # warm-up
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        predictor.predict_batch(batch, k=5)
        runs.append(time.perf_counter() - t0)
    print(f"batch of {args.batch} -> top-5 ({predictor.batch_path}): best {args.batch / min(runs):.0f} images/s, "
          f"median {args.batch / float(np.median(runs)):.0f} images/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
