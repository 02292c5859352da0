"""A lead for issue 19, not in the site: undo a writer's slant and width, learnt from their corrections.

    .venv/bin/python bench/writer_normalisation.py [--fresh 600] [--stream 3000] [--fonts 12]

The per-writer memory (``ml.writer_layer``) corrects the CNN's last layer; a writer whose
letters are all turned or widened the same way gains little from it (bench/RESULTS.md). Here
the writer's hand is undone in the input instead: each of their drawings (the stored 28x28
input) is turned back and narrowed or widened (``unstyle``) before the CNN reads it. Which
turn and width is chosen from what the writer did: one misread drawing of each class they
misread, corrected (as in bench/personal_adaptation.py), and the grid point (``GRID``, the
identity included) under which the CNN gives those corrected labels the highest mean log
probability ("corrections alone"); or that plus the same mean over the last ``--accepted``
drawings the model read right and the writer kept ("with the kept ones": a site has them, the
writer's uncorrected submissions). Measured: top-1 on fresh drawings in the same hand, as
they come, with each rule's transform, and with the exact inverse of their style (an upper
bound, for the simulated styles only).

Writers: bench/personal_adaptation.py's styles (bench/retraining.py's drawing: turned, then
widened), a plain writer (EMNIST validation drawings as they are: what the rule costs a
writer whose hand is ordinary), and the held-out font families (letterforms, not a
transform). Caveat: the simulated styles are exactly the transform family searched here, so
their figures say how well the choice works when the family is right, not how often real
hands are turns and widenings (slant is closer to a shear).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from personal_adaptation import FIT_STYLES, REPORT_STYLES  # noqa: E402
from retraining import style_set, styled  # noqa: E402

from ml.data import load_validation  # noqa: E402
from ml.font_families import installed_fonts  # noqa: E402
from ml.inference import load_predictor  # noqa: E402

# (degrees turned, width factor) applied to a writer's drawings before reading them.
GRID = list(itertools.product((-40, -30, -20, -10, 0, 10, 20, 30, 40), (0.6, 0.8, 1.0, 1.25, 1.6)))


def unstyle(image: np.ndarray, rotate: float, wide: float) -> np.ndarray:
    """A uint8 (28, 28) EMNIST-orientation input turned ``rotate`` degrees, then ``wide`` times
    as wide, then through the site's preprocessing again (``styled`` in the inverse order)."""
    if rotate == 0 and wide == 1.0:
        return image
    return styled(image, rotate, wide, turn_first=True)


def unstyle_set(images: np.ndarray, rotate: float, wide: float) -> np.ndarray:
    return np.stack([unstyle(image, rotate, wide) for image in images])


def corrections(predictor, images: np.ndarray, labels: np.ndarray, accepted: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the first misread drawing of each class the model misreads in the stream, and of
    the last ``accepted`` drawings it read right (the ones the writer left as they were)."""
    right = predictor.read(images)[0].argmax(axis=1) == labels
    first = {}
    for row in np.flatnonzero(~right):
        first.setdefault(int(labels[row]), int(row))
    return np.array(sorted(first.values()), dtype=np.int64), np.flatnonzero(right)[-accepted:] if accepted else []


def mean_log_label(predictor, images, labels, rotate, wide) -> float:
    if len(images) == 0:
        return 0.0
    probs = predictor.read(unstyle_set(images, rotate, wide))[0]
    return float(np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-9)).mean())


def choose(predictor, images, labels, kept_images=(), kept_labels=()) -> tuple[float, float]:
    """The grid point under which the CNN gives the corrected drawings their labels with the
    highest mean log probability, plus the same mean over the drawings the writer kept (when
    given); the identity when there is nothing to go on."""
    if len(images) == 0:
        return 0.0, 1.0
    best, chosen = -np.inf, (0.0, 1.0)
    for rotate, wide in GRID:
        score = mean_log_label(predictor, images, labels, rotate, wide)
        score += mean_log_label(predictor, kept_images, kept_labels, rotate, wide)
        if score > best:
            best, chosen = score, (float(rotate), float(wide))
    return chosen


def top1(predictor, images, labels) -> float:
    return float((predictor.read(images)[0].argmax(axis=1) == labels).mean())


def report(name, predictor, stream, stream_labels, fresh, fresh_labels, accepted: int, inverse=None) -> dict:
    picked, kept = corrections(predictor, stream, stream_labels, accepted)
    rotate, wide = choose(predictor, stream[picked], stream_labels[picked])
    rotate_k, wide_k = choose(predictor, stream[picked], stream_labels[picked], stream[kept], stream_labels[kept])
    row = {
        "writer": name,
        "before": top1(predictor, fresh, fresh_labels),
        "after": top1(predictor, unstyle_set(fresh, rotate, wide), fresh_labels),
        "after_kept": top1(predictor, unstyle_set(fresh, rotate_k, wide_k), fresh_labels),
    }
    if inverse is not None:
        row["exact_inverse"] = top1(predictor, unstyle_set(fresh, *inverse), fresh_labels)
    bound = f"; exact inverse {100 * row['exact_inverse']:.1f} %" if inverse is not None else ""
    print(
        f"{name}: {len(picked)} corrections, {len(kept)} kept; before {100 * row['before']:.1f} %; "
        f"corrections alone: turn {rotate:+.0f} width x{wide} -> {100 * row['after']:.1f} % "
        f"({100 * (row['after'] - row['before']):+.1f}); with the kept ones: turn {rotate_k:+.0f} width x{wide_k} "
        f"-> {100 * row['after_kept']:.1f} % ({100 * (row['after_kept'] - row['before']):+.1f}){bound}",
        flush=True,
    )
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ml/artifacts/emnist_cnn.keras")
    parser.add_argument("--data-dir", default="../shared/data/emnist")
    parser.add_argument("--fresh", type=int, default=600, help="fresh drawings a style writer is measured on")
    parser.add_argument("--stream", type=int, default=3000, help="drawings a style writer draws (and corrects)")
    parser.add_argument("--fonts", type=int, default=12, help="held-out font families (0: none)")
    parser.add_argument(
        "--accepted", type=int, default=100, help="drawings read right the writer kept, used by the second rule"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.processor() or platform.machine()}")
    predictor = load_predictor(args.model)
    images, labels = load_validation(args.data_dir)
    rows = np.random.default_rng(args.seed).permutation(len(images))
    fresh, stream = rows[: args.fresh], rows[args.fresh : args.fresh + args.stream]
    results = []
    for name, rotate, wide in [*FIT_STYLES, *REPORT_STYLES]:
        results.append(
            report(
                name,
                predictor,
                style_set(images[stream], rotate, wide),
                labels[stream],
                style_set(images[fresh], rotate, wide),
                labels[fresh],
                args.accepted,
                inverse=(-rotate, 1 / wide),
            )
        )
    results.append(
        report("plain", predictor, images[stream], labels[stream], images[fresh], labels[fresh], args.accepted)
    )
    if args.fonts:
        from ml.fonts import render_family

        for family in installed_fonts(split="heldout")[: args.fonts]:
            stream_images, stream_labels = render_family(family.name, str(family.path), 6, 2001)
            fresh_images, fresh_labels = render_family(family.name, str(family.path), 10, 3001)
            results.append(
                report(
                    f"font {family.name}",
                    predictor,
                    stream_images,
                    stream_labels.astype(np.int64),
                    fresh_images,
                    fresh_labels.astype(np.int64),
                    args.accepted,
                )
            )
    reported = [r for r in results if r["writer"] in {name for name, *_ in REPORT_STYLES}]
    fonts = [r for r in results if r["writer"].startswith("font ")]
    for title, group in (("the 4 reported style writers", reported), ("the font writers", fonts)):
        if group:
            before = np.mean([r["before"] for r in group])
            after, kept = np.mean([r["after"] for r in group]), np.mean([r["after_kept"] for r in group])
            print(
                f"mean of {title}: {100 * before:.1f} % -> corrections alone {100 * after:.1f} % "
                f"({100 * (after - before):+.2f} points), with the kept ones {100 * kept:.1f} % ({100 * (kept - before):+.2f})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
