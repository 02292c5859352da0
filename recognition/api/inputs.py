"""A drawing from a request: a multipart upload (``image`` file) or a JSON body (base64).

Both POST submissions and POST words take a drawing the same way; ``drawing_from_request``
gives the keyword arguments their services share. Every malformed part is a domain error or
a DRF validation error, so the client gets a 4xx that names it.
"""

import base64
import binascii
import math
import re

from rest_framework import exceptions, serializers

from ml.preprocess import MAX_SIDE
from recognition.api.parsers import json_loads_bounded
from recognition.api.serializers import DrawingInputSerializer
from recognition.errors import ImageTooLarge, InvalidImage, InvalidStrokes
from recognition.identity import client_id_for_write
from recognition.models import Submission
from recognition.services.drawings import MAX_STROKES, image_max_bytes

_DATA_URL = re.compile(r"^data:(?P<type>[\w/+.-]+);base64,", re.ASCII)

# The documented formats by their first bytes, for a file part sent without a type.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)
# What clients send for "a file, type unknown": curl -F without ;type=, Python's requests.
_UNTYPED = frozenset({"", "application/octet-stream"})

# Points in all the strokes of one drawing. A word of eight characters drawn on the page is
# about 700 points (pointer events at 60 Hz); splitting a word by its strokes costs about
# 10 ms a thousand points (bench/abuse_cost.py), so 4,000 keeps the dearest word under 50 ms.
# Stricter than services.drawings.MAX_STROKE_POINTS (20,000), which any caller must pass.
MAX_STROKE_POINTS = 4_000

# Stroke coordinates are the image's pixels (or a canvas's CSS pixels, a fraction of them): a
# pen may wander off the canvas's edge while drawing, but not by more than a canvas.
STROKE_COORDINATE_RANGE = (-MAX_SIDE, 2 * MAX_SIDE)
# t is milliseconds since the drawing began (the canvas's performance.now()); an epoch time in
# milliseconds (1.7e12) is allowed too.
STROKE_TIME_MAX = 1e13


def drawing_from_request(request) -> dict:
    """``image``, ``content_type``, ``strokes``, ``source``, ``owner`` and ``client_id`` for
    ``services.submission_create`` and ``services.word_create``."""
    # A body over settings.REQUEST_MAX_BYTES never gets here (RequestSizeLimitMiddleware).
    max_bytes = image_max_bytes()
    if request.content_type.startswith("multipart/"):
        image, content_type, strokes, source = _from_multipart(request, max_bytes)
    else:
        image, content_type, strokes, source = _from_json(request, max_bytes)
    strokes_check(strokes)
    return {
        "image": image,
        "content_type": content_type,
        "strokes": strokes,
        "source": source,
        "owner": request.user,
        # Not yet in the session: the view keeps it there once the drawing is accepted
        # (client_id_keep), so a rejected first request starts no visitor session.
        "client_id": client_id_for_write(request),
    }


def _from_multipart(request, max_bytes: int) -> tuple[bytes, str, list | None, str]:
    upload = request.FILES.get("image")
    if upload is None:
        raise InvalidImage("Send the image as the multipart field `image`.")
    if upload.size > max_bytes:
        raise ImageTooLarge(f"Image too large: {upload.size} bytes, the limit is {max_bytes}.")
    strokes = request.data.get("strokes")
    if strokes:
        # The parser's limits for a JSON body hold for this JSON text too (nesting, size).
        try:
            strokes = json_loads_bounded(strokes)
        except exceptions.ParseError as exc:
            raise serializers.ValidationError({"strokes": [str(exc.detail)]}) from None
    source = request.data.get("source") or Submission.Source.UPLOAD
    image = upload.read()
    content_type = (upload.content_type or "").split(";")[0].strip().lower()
    if content_type in _UNTYPED:
        # No declared type is not a wrong one: name it from the bytes. A declared type that is
        # not an image stays a 415; bytes of another format are refused when decoded.
        content_type = image_type_sniff(image) or content_type
    return image, content_type, strokes or None, source


def _from_json(request, max_bytes: int) -> tuple[bytes, str, list | None, str]:
    if not isinstance(request.data, dict):
        raise serializers.ValidationError({"detail": "Expected a JSON object."})
    serializer = DrawingInputSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    text = data["image_base64"].strip()
    content_type = data.get("content_type", "image/png")
    match = _DATA_URL.match(text)
    if match:
        content_type = data.get("content_type", match["type"])
        text = text[match.end() :]
    if any(space in text for space in ("\n", "\r", " ", "\t")):
        # MIME base64 (RFC 2045; openssl base64, Python's encodebytes) breaks lines every 76
        # characters; they carry nothing. Looked for first: a split of 14 MB costs 30 ms.
        text = "".join(text.split())
    # Refuse a huge string before decoding it: base64 carries 3 bytes in every 4 characters.
    if len(text) * 3 // 4 > max_bytes + 3:
        raise ImageTooLarge(f"Image too large: over {max_bytes} bytes.")
    try:
        image = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage("image_base64 is not valid base64.") from None
    return image, content_type.lower(), data.get("strokes"), data.get("source", Submission.Source.API)


def image_type_sniff(image: bytes) -> str | None:
    """The content type of the documented formats from their magic bytes, else None."""
    if image[:4] == b"RIFF" and image[8:12] == b"WEBP":
        return "image/webp"
    return next((content_type for magic, content_type in _MAGIC if image.startswith(magic)), None)


def strokes_check(strokes) -> None:
    """Strokes, before anything reads them: at most MAX_STROKES lists of points, at most
    MAX_STROKE_POINTS points in all, each [x, y] or [x, y, t] with finite numbers, x and y
    within STROKE_COORDINATE_RANGE and t within STROKE_TIME_MAX.

    A number JSON allows is not always one the segmenter can use: a 400-digit integer is valid
    JSON but overflows a float in ml.segment, and would be stored as it is on a submission.

    Raises:
        InvalidStrokes: the first thing wrong, named (400).
    """
    if strokes is None:
        return
    max_strokes, max_points = MAX_STROKES, MAX_STROKE_POINTS
    if not isinstance(strokes, list) or len(strokes) > max_strokes:
        raise InvalidStrokes(f"strokes must be a list of at most {max_strokes} strokes.")
    if not all(isinstance(stroke, list) for stroke in strokes):
        raise InvalidStrokes("Each stroke must be a list of points.")
    # Counted before any point is looked at: a million points are refused for the cost of a sum.
    total = sum(len(stroke) for stroke in strokes)
    if total > max_points:
        raise InvalidStrokes(f"strokes may hold at most {max_points} points in all, not {total}.")
    low, high = STROKE_COORDINATE_RANGE
    for stroke in strokes:
        for point in stroke:
            # A fourth value (pen pressure, say) is taken as services.submissions takes it.
            if not isinstance(point, list) or not 2 <= len(point) <= 4 or not all(_is_number(v) for v in point):
                raise InvalidStrokes("Each point must be [x, y] or [x, y, t] with numbers.")
            if not (low <= point[0] <= high and low <= point[1] <= high):
                raise InvalidStrokes(f"Stroke coordinates must lie within {low}..{high} pixels.")
            if not all(-STROKE_TIME_MAX <= v <= STROKE_TIME_MAX for v in point[2:]):
                raise InvalidStrokes(f"A point's time must lie within +-{STROKE_TIME_MAX:.0e} ms.")


def _is_number(value) -> bool:
    # bool is an int to Python but not a number in JSON; floats from a strict parser are finite,
    # but a caller may hand us a Python list.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return not isinstance(value, float) or math.isfinite(value)
