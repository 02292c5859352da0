"""Loading EMNIST in every format we meet, and building the training/validation sets.

Formats read:
    * the shared ``.npz`` files (``images`` uint8 (N, 28, 28), ``labels`` uint8),
    * the official idx files (``emnist-<split>-<part>-images-idx3-ubyte[.gz]`` with
      ``...-labels-idx1-ubyte[.gz]``),
    * the Kaggle CSVs (``emnist-<split>-<part>.csv``: label, then 784 pixels).

All three keep EMNIST's storage orientation (transposed: ``img.T`` is upright). We keep
that orientation everywhere in ``ml``; ``to_upright`` is for display only.

Labels of every split are turned into a boolean "allowed classes" mask over the 62
ByClass classes. A ByClass label allows exactly one class; a ByMerge/Balanced label for
a merged letter (C, I, J, ... Z) allows the upper and the lower case; a Letters label
allows both cases of its letter. Training maximises the summed probability of the
allowed classes (see ``ml.model.allowed_set_loss``), so merged labels still teach.
"""

from __future__ import annotations

import csv
import gzip
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml.errors import DataFormatError

CLASSES = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
NUM_CLASSES = len(CLASSES)  # 62
IMAGE_SIZE = 28

# The split whose rows carry exact 62-class labels; the validation split is carved from it.
EXACT_SPLIT = "byclass"
VAL_FRACTION = 0.12
VAL_SEED = 20261123

# ByMerge and Balanced share one 47-class label space: digits, A-Z, then the lower-case
# letters that were *not* merged into their upper case.
_BYMERGE_LOWER = "abdefghnqrt"
SPLITS = ("byclass", "bymerge", "balanced", "letters", "digits", "mnist")

_NAME_RE = re.compile(r"emnist-(?P<split>[a-z]+)-(?P<part>train|test)")


def class_index(label: str) -> int:
    """Index of a character in the 62 ByClass classes. Raises ``KeyError`` if unknown."""
    index = CLASSES.find(label)
    if len(label) != 1 or index < 0:
        raise KeyError(label)
    return index


def to_upright(images: np.ndarray) -> np.ndarray:
    """EMNIST storage orientation -> upright (as a person reads it). Works on (28, 28) or (N, 28, 28)."""
    return np.swapaxes(images, -1, -2)


def from_upright(images: np.ndarray) -> np.ndarray:
    """Upright -> EMNIST storage orientation (the inverse of ``to_upright``)."""
    return np.swapaxes(images, -1, -2)


def label_space_masks(split: str) -> np.ndarray:
    """Allowed-class masks for every label of a split.

    Args:
        split: one of ``SPLITS``.

    Returns:
        bool array (L, 62): row ``l`` is the set of ByClass classes that label ``l`` of
        this split stands for. Letters labels start at 1, so its row 0 is empty.
    """
    if split == "byclass":
        return np.eye(NUM_CLASSES, dtype=bool)
    if split in ("digits", "mnist"):
        return np.eye(NUM_CLASSES, dtype=bool)[:10]
    if split in ("bymerge", "balanced"):
        masks = np.zeros((47, NUM_CLASSES), dtype=bool)
        for label in range(36):
            masks[label, label] = True
        for offset, char in enumerate(_BYMERGE_LOWER):
            masks[36 + offset, class_index(char)] = True
        for upper in range(10, 36):
            lower = CLASSES[upper].lower()
            if lower not in _BYMERGE_LOWER:  # merged: the upper-case label stands for both
                masks[upper, class_index(lower)] = True
        return masks
    if split == "letters":
        masks = np.zeros((27, NUM_CLASSES), dtype=bool)
        for k in range(1, 27):
            masks[k, 9 + k] = True  # A=10
            masks[k, 35 + k] = True  # a=36
        return masks
    raise DataFormatError(f"unknown EMNIST split {split!r}; expected one of {', '.join(SPLITS)}")


def labels_to_masks(split: str, labels: np.ndarray) -> np.ndarray:
    """Labels of ``split`` -> bool (N, 62) allowed-class masks. Raises on out-of-range labels."""
    table = label_space_masks(split)
    labels = np.asarray(labels).astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= len(table)):
        raise DataFormatError(f"{split} labels must lie in 0..{len(table) - 1}, got {labels.min()}..{labels.max()}")
    masks = table[labels]
    if labels.size and not masks.any(axis=1).all():
        raise DataFormatError(f"{split} has labels that stand for no class (letters start at 1)")
    return masks


# --------------------------------------------------------------------------- readers


def _check_images(images: np.ndarray, labels: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataFormatError(f"{source}: images must be (N, 28, 28), got {images.shape}")
    if images.dtype != np.uint8:
        raise DataFormatError(f"{source}: images must be uint8, got {images.dtype}")
    if labels.shape != (len(images),):
        raise DataFormatError(f"{source}: {len(images)} images but labels of shape {labels.shape}")
    return images, labels


def read_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a shared ``.npz`` file: (images uint8 (N, 28, 28), labels (N,))."""
    try:
        with np.load(path) as data:
            images, labels = data["images"], data["labels"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataFormatError(f"{path}: not an EMNIST .npz ({exc})") from exc
    return _check_images(images, labels, str(path))


def _open_maybe_gz(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | Path) -> np.ndarray:
    """Read one idx file (``.gz`` or not) into a uint8 array of its declared shape.

    The idx format: two zero bytes, a type code (0x08 = uint8), the number of
    dimensions, then each dimension as a big-endian uint32, then the data.
    """
    path = Path(path)
    try:
        with _open_maybe_gz(path) as fh:
            header = fh.read(4)
            if len(header) != 4 or header[:2] != b"\x00\x00" or header[2] != 0x08:
                raise DataFormatError(f"{path}: not a uint8 idx file (header {header!r})")
            ndim = header[3]
            dims = struct.unpack(f">{ndim}I", fh.read(4 * ndim))
            data = fh.read()
    except (OSError, EOFError, struct.error) as exc:
        raise DataFormatError(f"{path}: unreadable idx file ({exc})") from exc
    expected = int(np.prod(dims))
    if len(data) != expected:
        raise DataFormatError(f"{path}: header says {expected} bytes of data, found {len(data)}")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def read_idx_pair(images_path: str | Path, labels_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an official idx images/labels pair."""
    return _check_images(read_idx(images_path), read_idx(labels_path), str(images_path))


def read_kaggle_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a Kaggle EMNIST CSV: each row is ``label,p0,...,p783`` (no header, idx orientation)."""
    path = Path(path)
    try:
        with open(path, newline="") as fh:
            rows = [row for row in csv.reader(fh) if row]
        table = np.array(rows, dtype=np.int64)
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"{path}: not a numeric EMNIST CSV ({exc})") from exc
    if table.ndim != 2 or table.shape[1] != 1 + IMAGE_SIZE * IMAGE_SIZE:
        raise DataFormatError(f"{path}: rows must have 785 columns (label + 784 pixels)")
    if table[:, 1:].min(initial=0) < 0 or table[:, 1:].max(initial=0) > 255:
        raise DataFormatError(f"{path}: pixel values must lie in 0..255")
    images = table[:, 1:].astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    return _check_images(images, table[:, 0], str(path))


@dataclass(frozen=True)
class SourceFile:
    """One EMNIST file (or idx pair) found in a data directory."""

    split: str
    part: str
    path: Path
    labels_path: Path | None = None  # idx only

    @property
    def name(self) -> str:
        return self.path.name

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        if self.labels_path is not None:
            return read_idx_pair(self.path, self.labels_path)
        if self.path.suffix == ".csv":
            return read_kaggle_csv(self.path)
        return read_npz(self.path)


def discover(data_dir: str | Path) -> list[SourceFile]:
    """Find every EMNIST file in ``data_dir`` (npz, idx pairs, Kaggle CSVs).

    Where the same split/part exists in several formats, only one is kept (idx, then
    CSV, then npz), so the full official download placed beside the shared files
    replaces the partial ones rather than doubling them. ByClass comes first: on exact
    duplicates its exact labels win.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataFormatError(f"{data_dir}: no such data directory")
    found: dict[tuple[str, str], SourceFile] = {}
    rank: dict[tuple[str, str], int] = {}
    for path in sorted(data_dir.iterdir()):
        match = _NAME_RE.match(path.name)
        if not match or match["split"] not in SPLITS:
            continue
        key = (match["split"], match["part"])
        if "-images-idx3-ubyte" in path.name:
            labels_path = path.with_name(path.name.replace("-images-idx3-ubyte", "-labels-idx1-ubyte"))
            if not labels_path.exists():
                raise DataFormatError(f"{path}: no matching labels file {labels_path.name}")
            source, source_rank = SourceFile(*key, path, labels_path), 0
        elif path.suffix == ".csv":
            source, source_rank = SourceFile(*key, path), 1
        elif path.suffix == ".npz":
            source, source_rank = SourceFile(*key, path), 2
        else:
            continue
        if key not in found or source_rank < rank[key]:
            found[key], rank[key] = source, source_rank
    order = {split: i for i, split in enumerate(SPLITS)}
    return sorted(found.values(), key=lambda s: (order[s.split], s.part != "test", s.name))


# --------------------------------------------------------------------------- datasets


def image_keys(images: np.ndarray) -> np.ndarray:
    """One opaque, hashable-by-numpy key per image, equal iff the pixels are equal."""
    flat = np.ascontiguousarray(images.reshape(len(images), -1))
    return flat.view(np.dtype((np.void, flat.shape[1]))).ravel()


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of a seeded, per-class ``fraction`` of ``labels`` (sorted)."""
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in np.unique(labels):
        rows = np.flatnonzero(labels == cls)
        take = int(round(fraction * len(rows)))
        chosen.append(rng.permutation(rows)[:take])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


@dataclass
class EmnistData:
    """Training and validation sets, ready for ``ml.train``.

    Attributes:
        train_images: uint8 (N, 28, 28), EMNIST orientation, deduplicated.
        train_allowed: bool (N, 62), the classes each training label allows.
        val_images: uint8 (M, 28, 28), never seen in training (nor any exact copy).
        val_labels: int64 (M,), exact ByClass labels.
        summary: what was read and dropped, per file (for the training report).
        train_split: str (N,), the EMNIST split each training row's label came from.
    """

    train_images: np.ndarray
    train_allowed: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    summary: dict = field(default_factory=dict)
    train_split: np.ndarray | None = None

    def class_prior(self) -> np.ndarray:
        """float64 (62,): the ByClass class frequencies, counted on ByClass training rows.

        This is the distribution the site's users resemble; the other files are not
        (MNIST and Digits add only digits, Letters is balanced).
        """
        rows = (
            self.train_allowed[self.train_split == EXACT_SPLIT] if self.train_split is not None else self.train_allowed
        )
        counts = np.bincount(rows.argmax(axis=1), minlength=NUM_CLASSES).astype(np.float64)
        return counts / max(counts.sum(), 1.0)

    @property
    def train_exact(self) -> np.ndarray:
        """Mask of training rows whose label allows exactly one class."""
        return self.train_allowed.sum(axis=1) == 1


def load_validation(data_dir: str | Path, fraction: float = VAL_FRACTION, seed: int = VAL_SEED):
    """The fixed validation split only: (images, labels). Same rows as ``load_emnist`` gives."""
    source = _validation_source(discover(data_dir))
    images, labels = source.read()
    rows = stratified_split(labels, fraction, seed)
    return images[rows], labels[rows].astype(np.int64)


def _validation_source(sources: list[SourceFile]) -> SourceFile:
    exact = [s for s in sources if s.split == EXACT_SPLIT]
    if not exact:
        raise DataFormatError("no ByClass file found: the validation split is carved from ByClass")
    # Prefer the test part: it is what the shared data has, and with the full download
    # it keeps the official train part entirely for training.
    return next((s for s in exact if s.part == "test"), exact[0])


def load_emnist(
    data_dir: str | Path,
    *,
    fraction: float = VAL_FRACTION,
    seed: int = VAL_SEED,
    splits: tuple[str, ...] = SPLITS,
) -> EmnistData:
    """Read every EMNIST file in ``data_dir`` and build the train/validation sets.

    The validation split is a seeded, stratified ``fraction`` of the ByClass test rows,
    fixed across model versions. Training gets every other usable image: exact copies of
    a validation image are dropped, and exact duplicates across files are merged into one
    row whose allowed set is the intersection of their labels (the first file's label wins
    when they disagree).
    """
    sources = [s for s in discover(data_dir) if s.split in splits]
    val_source = _validation_source(sources)
    parts_images, parts_masks, summary = [], [], {}
    val_images = val_labels = None
    for source in sources:
        images, labels = source.read()
        masks = labels_to_masks(source.split, labels)
        entry = {"split": source.split, "part": source.part, "rows": int(len(images))}
        if source is val_source:
            val_rows = stratified_split(labels, fraction, seed)
            keep = np.ones(len(images), dtype=bool)
            keep[val_rows] = False
            val_images, val_labels = images[val_rows], labels[val_rows].astype(np.int64)
            images, masks = images[keep], masks[keep]
            entry["validation_rows"] = int(len(val_rows))
        parts_images.append(images)
        parts_masks.append(masks)
        summary[source.name] = entry

    images = np.concatenate(parts_images)
    masks = np.concatenate(parts_masks)
    origin = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts_images)])
    names = list(summary)
    origin_split = np.array([summary[name]["split"] for name in names])

    # Never train on a copy of a validation image, whatever file it came from.
    keys = image_keys(images)
    leaked = np.isin(keys, image_keys(val_images))
    for i, name in enumerate(names):
        summary[name]["dropped_validation_copies"] = int(leaked[origin == i].sum())
    images, masks, origin, keys = images[~leaked], masks[~leaked], origin[~leaked], keys[~leaked]

    # Merge exact duplicates: intersect their allowed sets, keep the first row.
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    merged = np.ones((len(first), NUM_CLASSES), dtype=bool)
    np.logical_and.at(merged, inverse, masks)
    conflict = ~merged.any(axis=1)
    merged[conflict] = masks[first[conflict]]
    is_first = np.zeros(len(images), dtype=bool)
    is_first[first] = True
    for i, name in enumerate(names):
        summary[name]["dropped_duplicates"] = int((~is_first[origin == i]).sum())
    order = np.argsort(first)  # keep file order: ByClass rows first
    summary["_totals"] = {
        "train": int(len(first)),
        "train_exact_label": int((merged[order].sum(axis=1) == 1).sum()),
        "validation": int(len(val_images)),
        "label_conflicts": int(conflict.sum()),
    }
    return EmnistData(
        train_images=images[first[order]],
        train_allowed=merged[order],
        val_images=val_images,
        val_labels=val_labels,
        summary=summary,
        train_split=origin_split[origin[first[order]]],
    )
