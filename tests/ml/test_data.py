import gzip
import struct

import numpy as np
import pytest

from ml.data import (
    CLASSES,
    discover,
    from_upright,
    label_space_masks,
    labels_to_masks,
    load_emnist,
    load_validation,
    read_idx_pair,
    read_kaggle_csv,
    read_npz,
    stratified_split,
    to_upright,
)
from ml.errors import DataFormatError


def write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def random_images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def test_upright_and_back_are_inverse_transposes():
    images = random_images(3)
    assert np.array_equal(to_upright(images)[1], images[1].T)
    assert np.array_equal(from_upright(to_upright(images)), images)


def test_shared_files_are_stored_transposed(shared_data):
    # An upright "1" is a vertical stroke; stored transposed, the mean "1" is wider than tall.
    images, labels = read_npz(shared_data / "emnist-mnist-test.npz")
    mean_one = images[labels == 1].mean(axis=0)
    ink_rows = (mean_one > 60).any(axis=1).sum()
    ink_cols = (mean_one > 60).any(axis=0).sum()
    assert ink_cols > 1.5 * ink_rows
    upright = to_upright(mean_one)
    assert (upright > 60).any(axis=1).sum() > 1.5 * (upright > 60).any(axis=0).sum()


def test_it_reads_an_official_idx_pair_in_the_same_orientation_as_npz(tmp_path):
    images, labels = random_images(5), np.array([0, 1, 2, 3, 61], dtype=np.uint8)
    write_idx(tmp_path / "emnist-byclass-test-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "emnist-byclass-test-labels-idx1-ubyte.gz", labels)
    got_images, got_labels = read_idx_pair(
        tmp_path / "emnist-byclass-test-images-idx3-ubyte.gz", tmp_path / "emnist-byclass-test-labels-idx1-ubyte.gz"
    )
    assert np.array_equal(got_images, images)
    assert np.array_equal(got_labels, labels)


def test_it_rejects_an_idx_file_whose_length_disagrees_with_its_header(tmp_path):
    path = tmp_path / "bad-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(struct.pack(">BBBBIII", 0, 0, 8, 3, 2, 28, 28) + b"\x00" * 100)
    with pytest.raises(DataFormatError, match="header says"):
        read_idx_pair(path, path)


def test_it_reads_a_kaggle_csv_row_by_row(tmp_path):
    images, labels = random_images(4, seed=1), np.array([1, 2, 26, 3])
    rows = np.concatenate([labels[:, None], images.reshape(4, -1)], axis=1)
    np.savetxt(tmp_path / "emnist-letters-test.csv", rows, fmt="%d", delimiter=",")
    got_images, got_labels = read_kaggle_csv(tmp_path / "emnist-letters-test.csv")
    assert np.array_equal(got_images, images)
    assert np.array_equal(got_labels, labels)


def test_it_rejects_a_csv_with_the_wrong_number_of_columns(tmp_path):
    (tmp_path / "x.csv").write_text("1,2,3\n")
    with pytest.raises(DataFormatError, match="785 columns"):
        read_kaggle_csv(tmp_path / "x.csv")


@pytest.mark.parametrize("split", ["bymerge", "balanced", "byclass", "letters", "digits"])
def test_label_spaces_agree_with_the_official_mapping_files(shared_data, split):
    mapping = np.loadtxt(shared_data / f"emnist-{split}-mapping.txt", dtype=int)
    table = label_space_masks(split)
    # The files name one character per merged label (C for "C or c"): it must be allowed.
    for row in mapping:
        label, codes = row[0], row[1:]
        assert {CLASSES.index(chr(c)) for c in codes} <= set(np.flatnonzero(table[label]))
    assert table.sum() == {"bymerge": 62, "balanced": 62, "byclass": 62, "letters": 52, "digits": 10}[split]


def test_merged_labels_allow_both_cases_and_unmerged_ones_only_one():
    masks = labels_to_masks("bymerge", np.array([12, 10, 36]))  # C (merged), A (not merged), a
    assert set(np.flatnonzero(masks[0])) == {CLASSES.index("C"), CLASSES.index("c")}
    assert set(np.flatnonzero(masks[1])) == {CLASSES.index("A")}
    assert set(np.flatnonzero(masks[2])) == {CLASSES.index("a")}
    letters = labels_to_masks("letters", np.array([1, 26]))
    assert set(np.flatnonzero(letters[1])) == {CLASSES.index("Z"), CLASSES.index("z")}


def test_it_rejects_labels_outside_the_split(tmp_path):
    with pytest.raises(DataFormatError):
        labels_to_masks("bymerge", np.array([47]))
    with pytest.raises(DataFormatError, match="stand for no class"):
        labels_to_masks("letters", np.array([0]))


def test_stratified_split_is_seeded_and_per_class():
    labels = np.repeat(np.arange(5), 100)
    a, b = stratified_split(labels, 0.1, seed=3), stratified_split(labels, 0.1, seed=3)
    assert np.array_equal(a, b)
    assert np.bincount(labels[a]).tolist() == [10] * 5
    assert not np.array_equal(a, stratified_split(labels, 0.1, seed=4))


def make_dir(tmp_path):
    rng = np.random.default_rng(0)
    byclass = rng.integers(0, 256, (200, 28, 28), dtype=np.uint8)
    byclass_labels = np.repeat(np.arange(10, 20), 20).astype(np.uint8)  # A..J
    np.savez(tmp_path / "emnist-byclass-test-dev.npz", images=byclass, labels=byclass_labels)
    # ByMerge: 3 copies of ByClass rows (one of which may be in validation) + 5 new images
    bymerge = np.concatenate([byclass[:3], rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)])
    bymerge_labels = np.concatenate([byclass_labels[:3], [12, 12, 12, 10, 11]]).astype(np.uint8)
    np.savez(tmp_path / "emnist-bymerge-test.npz", images=bymerge, labels=bymerge_labels)
    return byclass, byclass_labels, bymerge


def test_validation_is_fixed_and_never_leaks_into_training(tmp_path):
    byclass, _, _ = make_dir(tmp_path)
    data = load_emnist(tmp_path, fraction=0.2)
    again_images, again_labels = load_validation(tmp_path, fraction=0.2)
    assert np.array_equal(data.val_images, again_images)
    assert np.array_equal(data.val_labels, again_labels)
    assert np.bincount(data.val_labels, minlength=20)[10:20].tolist() == [4] * 10
    val_keys = {img.tobytes() for img in data.val_images}
    assert not any(img.tobytes() in val_keys for img in data.train_images)
    # every train image appears once
    assert len({img.tobytes() for img in data.train_images}) == len(data.train_images)


def test_duplicates_across_files_are_merged_keeping_the_exact_label(tmp_path):
    byclass, byclass_labels, bymerge = make_dir(tmp_path)
    data = load_emnist(tmp_path, fraction=0.2)
    val_keys = {img.tobytes() for img in data.val_images}
    expected = 160 + sum(img.tobytes() not in val_keys for img in bymerge[3:])
    assert len(data.train_images) == expected
    assert data.summary["_totals"]["train"] == expected
    for img, label in zip(byclass[:3], byclass_labels[:3]):
        if img.tobytes() in val_keys:
            continue
        row = next(i for i, t in enumerate(data.train_images) if np.array_equal(t, img))
        assert np.flatnonzero(data.train_allowed[row]).tolist() == [label]
    merged_rows = data.train_allowed.sum(axis=1) == 2
    assert merged_rows.sum() == 3  # the three new "C or c" images


def test_the_full_download_replaces_the_partial_file_of_the_same_part(tmp_path):
    make_dir(tmp_path)
    images = random_images(4)
    write_idx(tmp_path / "emnist-bymerge-test-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "emnist-bymerge-test-labels-idx1-ubyte.gz", np.array([1, 2, 3, 4]))
    sources = discover(tmp_path)
    bymerge = [s for s in sources if s.split == "bymerge"]
    assert len(bymerge) == 1 and bymerge[0].labels_path is not None
    assert sources[0].split == "byclass"


def test_it_needs_a_byclass_file_for_validation(tmp_path):
    np.savez(tmp_path / "emnist-bymerge-test.npz", images=random_images(2), labels=np.array([1, 2]))
    with pytest.raises(DataFormatError, match="ByClass"):
        load_emnist(tmp_path)


def test_the_class_prior_counts_only_byclass_rows(tmp_path):
    make_dir(tmp_path)
    np.savez(tmp_path / "emnist-mnist-test.npz", images=random_images(50, seed=9), labels=np.zeros(50, dtype=np.uint8))
    data = load_emnist(tmp_path, fraction=0.2)
    assert set(np.unique(data.train_split)) == {"byclass", "bymerge", "mnist"}
    prior = data.class_prior()
    assert prior[0] == 0  # fifty extra "0"s from MNIST do not count
    assert prior[10:20] == pytest.approx([0.1] * 10)  # ByClass: 16 training rows of each of A..J
