"""The 62 labels and their look-alike groups, without importing anything heavy (ml needs only numpy)."""

from ml.data import CLASSES
from ml.evaluate import LOOKALIKE_PAIRS
from ml.evaluate import lookalike_groups as group_ids


def labels() -> str:
    return CLASSES


def lookalike_groups() -> list[list[str]]:
    """Classes that handwriting makes hard to tell apart, from ml.evaluate.LOOKALIKE_PAIRS.

    One list per group of two or more labels (chains of pairs join: 1, I, i, l, L), in
    ``labels()`` order, so the page can say which of its top answers are such a group.
    """
    groups: dict[int, list[str]] = {}
    for label, group in zip(CLASSES, group_ids().tolist()):
        groups.setdefault(group, []).append(label)
    return [members for members in groups.values() if len(members) > 1]


def lookalike_pairs() -> list[list[str]]:
    return [list(pair) for pair in LOOKALIKE_PAIRS]


def label_is_class(label) -> bool:
    """True for one of the 62 labels. The database refuses any other correction label; rows from
    before that constraint are skipped (and reported) by exports and retraining with this."""
    return isinstance(label, str) and len(label) == 1 and label in labels()


def corrections_split_by_label(corrections) -> tuple[list, list]:
    """(corrections whose label is a class, the others), each in the given order."""
    valid, invalid = [], []
    for correction in corrections:
        (valid if label_is_class(correction.label) else invalid).append(correction)
    return valid, invalid
