"""Exceptions raised by the public functions of ``ml``.

Every error a caller can trigger with bad input is a subclass of ``MLInputError``
(itself a ``ValueError``), so a web layer can catch one type and answer 4xx.
"""


class MLInputError(ValueError):
    """Input that cannot be turned into a prediction (bad shape, dtype, bytes...)."""


class InvalidImageError(MLInputError):
    """Bytes that are not a decodable image, or an array of the wrong shape/dtype."""


class ImageTooLargeError(MLInputError):
    """An image whose dimensions or pixel count exceed the configured limits."""


class BlankImageError(MLInputError):
    """An image with no ink on it (empty canvas, blank page)."""


class TooManyCharactersError(MLInputError):
    """A word drawing that splits into more characters than the limit."""


class DataFormatError(ValueError):
    """A dataset file that does not follow the EMNIST format it claims to be."""


class ModelFileError(RuntimeError):
    """A model file that is missing, unreadable or not a 62-class model."""
