"""Domain errors raised by services; interfaces turn them into 4xx answers."""


class RecognitionError(Exception):
    """Base class. ``code`` is a stable machine-readable name, the message is for people."""

    code = "invalid"
    status_code = 400


class UnsupportedImageType(RecognitionError):
    code = "unsupported_image_type"
    status_code = 415


class InvalidImage(RecognitionError):
    code = "invalid_image"


class ImageTooLarge(RecognitionError):
    code = "image_too_large"
    status_code = 413


class BlankImage(RecognitionError):
    code = "blank_image"


class InvalidStrokes(RecognitionError):
    code = "invalid_strokes"


class TooManyCharacters(RecognitionError):
    code = "too_many_characters"


class UnknownLabel(RecognitionError):
    code = "unknown_label"


class NotFound(RecognitionError):
    code = "not_found"
    status_code = 404


class InvalidState(RecognitionError):
    code = "invalid_state"
    status_code = 409


class NoActiveModel(RecognitionError):
    code = "no_active_model"
    status_code = 503
