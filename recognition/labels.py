"""The 62 labels, without importing anything heavy (ml.data needs only numpy)."""


def labels() -> str:
    from ml.data import CLASSES

    return CLASSES
