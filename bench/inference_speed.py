"""Inference speed on this machine: one 280x280 canvas PNG -> top-5, and the batch path.

    python bench/inference_speed.py [--model ml/artifacts/emnist_cnn.keras] [--model OTHER ...] [--rounds 3]

Single image: PNG bytes -> ml.preprocess.image_bytes_to_emnist -> Predictor.predict(k=5),
timed per call after a warm-up; the median and p95 are reported. Batch: uint8 28x28
validation images through Predictor.predict_batch (the Lite batch interpreter on every core),
images per second. This machine's speed varies from minute to minute by up to a fifth, so with
two or more ``--model`` the models are measured in alternating rounds on the same PNGs, and
each model's figures are given as ratios to the first's: the figures that compare across hosts.
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


def time_singles(predictor, pngs) -> tuple[list[float], list[float]]:
    """Seconds per PNG: (preprocessing, PNG -> top-5)."""
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
    return pre, total


def time_batch(predictor, batch) -> float:
    """Best images/s of three passes over ``batch``."""
    predictor.predict_batch(batch[:2048], k=5)  # warm-up
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        predictor.predict_batch(batch, k=5)
        runs.append(time.perf_counter() - t0)
    return len(batch) / min(runs)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", action="append", help="repeat to compare (default: the shipped model)")
    parser.add_argument("--data-dir", default="../shared/data/emnist")
    parser.add_argument("--singles", type=int, default=500)
    parser.add_argument("--batch", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds over the models")
    args = parser.parse_args()
    models = args.model or ["ml/artifacts/emnist_cnn.keras"]
    images, _ = load_validation(args.data_dir)
    rng = np.random.default_rng(0)
    pngs = [render_canvas_png(images[i], rng, canvas=280) for i in range(args.singles)]
    batch = np.resize(images, (args.batch, 28, 28))
    predictors = [load_predictor(m) for m in models]
    ms = lambda v, q: 1000 * float(np.percentile(v, q))  # noqa: E731
    figures = {m: {"single": [], "batch": []} for m in models}
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, {cpu_name()}")
    for r in range(args.rounds):
        for model, predictor in zip(models, predictors):
            pre, total = time_singles(predictor, pngs)
            rate = time_batch(predictor, batch)
            figures[model]["single"].append(ms(total, 50))
            figures[model]["batch"].append(rate)
            print(
                f"round {r + 1} {model}: single 280x280 PNG -> top-5 ({predictor.single_path}): median "
                f"{ms(total, 50):.2f} ms, p95 {ms(total, 95):.2f} ms (preprocessing median {ms(pre, 50):.2f} ms), "
                f"n={len(total)}; batch of {args.batch} ({predictor.batch_path}): best {rate:.0f} images/s",
                flush=True,
            )
    first = figures[models[0]]
    for model in models:
        single, rate = float(np.median(figures[model]["single"])), float(np.median(figures[model]["batch"]))
        print(
            f"{model}: single median of rounds {single:.2f} ms "
            f"(x{single / float(np.median(first['single'])):.3f} the first's time), batch {rate:.0f} images/s "
            f"(x{rate / float(np.median(first['batch'])):.3f} the first's rate)"
        )
    return 0


def cpu_name() -> str:
    try:
        for row in Path("/proc/cpuinfo").read_text().splitlines():
            if row.startswith("model name"):
                return row.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    raise SystemExit(main())
