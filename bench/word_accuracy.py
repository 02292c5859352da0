"""Word accuracy: characters written in a row, split from the image alone, vs the same characters one per canvas.

    python bench/word_accuracy.py [--model ml/artifacts/emnist_cnn.keras] [--words 1500]
        [--length 3 8] [--size 60 160] [--gap 0.15 0.6] [--seed 11]

Words are made of validation images (``ml.data.load_validation``, each image used once):
each character is rendered like a canvas drawing (``ml.synth.render_character_ink``:
upscaled to a random size in ``--size`` px for its 28 px frame, strokes thinned or
thickened, crisp edges), placed left to right with a gap between one character's ink and
the next of ``--gap`` times their mean ink size, with a small vertical jitter, and encoded
as an RGBA canvas PNG. The PNG is segmented WITHOUT strokes (``ml.segment``, connected
components: what an upload or an API client sending only an image gets) and each piece
goes through ``ink_to_emnist`` and the model, as the site does.

Reported next to it, on the very same images: the single-character accuracy with each
image on its own canvas PNG (``ml.synth.render_canvas_png``, as bench/canvas_fidelity.py)
and on the raw 28x28. Character accuracy counts a character right only when its word was
split into the right number of pieces and the piece at its place reads as its label.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.data import CLASSES, load_validation  # noqa: E402
from ml.inference import load_predictor  # noqa: E402
from ml.preprocess import image_bytes_to_emnist, ink_to_png  # noqa: E402
from ml.segment import pieces_to_emnist, segment_image_bytes  # noqa: E402
from ml.synth import render_canvas_png, render_word_ink  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="ml/artifacts/emnist_cnn.keras")
    parser.add_argument("--data-dir", default="../shared/data/emnist")
    parser.add_argument("--words", type=int, default=1500)
    parser.add_argument("--length", type=int, nargs=2, default=(3, 8), metavar=("MIN", "MAX"))
    parser.add_argument(
        "--size", type=int, nargs=2, default=(60, 160), metavar=("MIN", "MAX"), help="px for a 28 px frame"
    )
    parser.add_argument(
        "--gap", type=float, nargs=2, default=(0.15, 0.6), metavar=("MIN", "MAX"), help="x mean ink size"
    )
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    images, labels = load_validation(args.data_dir)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(images))
    lengths = rng.integers(args.length[0], args.length[1] + 1, size=args.words)
    if lengths.sum() > len(order):
        parser.error(f"{lengths.sum()} characters asked for, the validation split has {len(order)}")
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    words = [order[s : s + n] for s, n in zip(starts, lengths)]

    word_inputs, piece_counts, seconds = [], [], []
    for rows in words:
        ink, _ = render_word_ink(images[rows], rng, size_range=tuple(args.size), gap_range=tuple(args.gap))
        png = ink_to_png(ink)
        started = time.perf_counter()
        pieces = segment_image_bytes(png).pieces  # no strokes: components only
        inputs = pieces_to_emnist(pieces)
        seconds.append(time.perf_counter() - started)
        word_inputs.append(inputs)
        piece_counts.append(len(pieces))
    used = np.concatenate(words)
    single_inputs = np.stack([image_bytes_to_emnist(render_canvas_png(images[r], rng)) for r in used])

    predictor = load_predictor(args.model)
    predict = lambda batch: predictor.probabilities(batch).argmax(axis=1)  # noqa: E731
    word_predictions = predict(np.concatenate(word_inputs))
    raw_right = predict(images[used]) == labels[used]
    single_right = predict(single_inputs) == labels[used]

    chars_right = chars_total = words_right = segmented = 0
    split_more = split_fewer = 0
    single_words_right = 0
    offset = position = 0
    for rows, count in zip(words, piece_counts):
        predicted = word_predictions[offset : offset + count]
        offset += count
        single_words_right += bool(single_right[position : position + len(rows)].all())
        position += len(rows)
        chars_total += len(rows)
        if count != len(rows):
            split_more += count > len(rows)
            split_fewer += count < len(rows)
            continue
        segmented += 1
        right = predicted == labels[rows]
        chars_right += int(right.sum())
        words_right += bool(right.all())
    segmented_chars = sum(len(rows) for rows, c in zip(words, piece_counts) if c == len(rows))

    char_acc = chars_right / chars_total
    print(
        f"model {args.model}; {len(words)} words of {args.length[0]}-{args.length[1]} characters "
        f"({chars_total} characters), seed {args.seed}"
    )
    print(
        f"character size {args.size[0]}-{args.size[1]} px a 28 px frame; gap {args.gap[0]}-{args.gap[1]} x mean ink size"
    )
    print(
        f"segmentation (image only): {segmented}/{len(words)} words split right; "
        f"{len(words) - segmented} failures ({split_more} too many pieces, {split_fewer} too few); "
        f"median {1000 * np.median(seconds):.1f} ms a word (decode + segment + preprocess)"
    )
    print(
        f"character accuracy, words:          {char_acc:.2%}   (on rightly split words: {chars_right / max(segmented_chars, 1):.2%})"
    )
    print(
        f"character accuracy, one per canvas: {single_right.mean():.2%}   gap {100 * (single_right.mean() - char_acc):+.2f} points"
    )
    print(f"character accuracy, raw 28x28:      {raw_right.mean():.2%}")
    print(
        f"whole-word accuracy:                {words_right / len(words):.2%}   "
        f"(same characters one per canvas: {single_words_right / len(words):.2%})"
    )
    assert len(CLASSES) == predictor.probabilities(images[:1]).shape[1]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
