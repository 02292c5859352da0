"""What every incoming drawing (a character or a word) must pass before anything is stored,
and the owner and source it is stored with."""

import contextlib

from django.contrib.auth.models import AbstractBaseUser

from ml import errors as ml_errors
from ml.preprocess import MAX_BYTES
from recognition.errors import (
    BlankImage,
    ImageTooLarge,
    InvalidImage,
    InvalidStrokes,
    TooManyCharacters,
    UnsupportedImageType,
)
from recognition.models import Submission

ALLOWED_CONTENT_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"})
MAX_STROKES = 500
MAX_STROKE_POINTS = 20_000


def image_max_bytes() -> int:
    return MAX_BYTES


@contextlib.contextmanager
def ml_input_errors():
    """``ml``'s input errors -> the domain errors the APIs answer with."""
    try:
        yield
    except ml_errors.ImageTooLargeError as exc:
        raise ImageTooLarge(f"Image too large: {exc}") from exc
    except ml_errors.BlankImageError as exc:
        raise BlankImage("The image is blank: draw or upload a character first.") from exc
    except ml_errors.TooManyCharactersError as exc:
        raise TooManyCharacters(f"Too many characters: {exc}.") from exc
    except ml_errors.MLInputError as exc:
        raise InvalidImage(f"Not a readable image: {exc}") from exc


def drawing_check(*, image: bytes, content_type: str, strokes) -> None:
    """What every drawing must pass before it is decoded: type, size, strokes' shape."""
    if content_type not in ALLOWED_CONTENT_TYPES:
        raise UnsupportedImageType(
            f"Unsupported image type {content_type!r}: send one of {', '.join(sorted(ALLOWED_CONTENT_TYPES))}."
        )
    if len(image) > image_max_bytes():
        raise ImageTooLarge(f"Image too large: {len(image)} bytes, the limit is {image_max_bytes()}.")
    _check_strokes(strokes)


def _check_strokes(strokes) -> None:
    """Strokes: a list of strokes, each a list of points [x, y] or [x, y, t] (numbers)."""
    if strokes is None:
        return
    if not isinstance(strokes, list) or len(strokes) > MAX_STROKES:
        raise InvalidStrokes(f"strokes must be a list of at most {MAX_STROKES} strokes.")
    total = 0
    for stroke in strokes:
        if not isinstance(stroke, list):
            raise InvalidStrokes("Each stroke must be a list of points.")
        total += len(stroke)
        for point in stroke:
            if (
                not isinstance(point, list)
                or not 2 <= len(point) <= 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)
            ):
                raise InvalidStrokes("Each point must be [x, y] or [x, y, t] with numbers.")
    if total > MAX_STROKE_POINTS:
        raise InvalidStrokes(f"strokes may hold at most {MAX_STROKE_POINTS} points in all.")


def drawing_source(source: str) -> str:
    """The source to store: an unknown one counts as the API (a client sent it)."""
    return source if source in Submission.Source.values else Submission.Source.API


def drawing_owner(owner: AbstractBaseUser | None) -> AbstractBaseUser | None:
    """The user to store as owner: an anonymous visitor owns by client id, not by user."""
    return owner if owner is not None and owner.is_authenticated else None
