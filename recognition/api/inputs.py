"""A drawing from a request: a multipart upload (``image`` file) or a JSON body (base64).

Both POST submissions and POST words take a drawing the same way; ``drawing_from_request``
gives the keyword arguments their services share. Every malformed part is a domain error or
a DRF validation error, so the client gets a 4xx that names it.
"""

import base64
import binascii
import json
import re

from rest_framework import serializers

from recognition.api.serializers import DrawingInputSerializer
from recognition.errors import ImageTooLarge, InvalidImage
from recognition.identity import client_id_get
from recognition.models import Submission
from recognition.services.drawings import image_max_bytes

_DATA_URL = re.compile(r"^data:(?P<type>[\w/+.-]+);base64,", re.ASCII)


def drawing_from_request(request) -> dict:
    """``image``, ``content_type``, ``strokes``, ``source``, ``owner`` and ``client_id`` for
    ``services.submission_create`` and ``services.word_create``."""
    # A body over settings.REQUEST_MAX_BYTES never gets here (RequestSizeLimitMiddleware).
    max_bytes = image_max_bytes()
    if request.content_type.startswith("multipart/"):
        image, content_type, strokes, source = _from_multipart(request, max_bytes)
    else:
        image, content_type, strokes, source = _from_json(request, max_bytes)
    return {
        "image": image,
        "content_type": content_type,
        "strokes": strokes,
        "source": source,
        "owner": request.user,
        # Only once the drawing is good: a rejected first request starts no visitor session.
        "client_id": client_id_get(request, create=True),
    }


def _from_multipart(request, max_bytes: int) -> tuple[bytes, str, list | None, str]:
    upload = request.FILES.get("image")
    if upload is None:
        raise InvalidImage("Send the image as the multipart field `image`.")
    if upload.size > max_bytes:
        raise ImageTooLarge(f"Image too large: {upload.size} bytes, the limit is {max_bytes}.")
    strokes = request.data.get("strokes")
    if strokes:
        try:
            strokes = json.loads(strokes)
        except ValueError:
            raise serializers.ValidationError({"strokes": ["Not valid JSON."]}) from None
    source = request.data.get("source") or Submission.Source.UPLOAD
    return upload.read(), (upload.content_type or "").split(";")[0].strip().lower(), strokes or None, source


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
    # Refuse a huge string before decoding it: base64 carries 3 bytes in every 4 characters.
    if len(text) * 3 // 4 > max_bytes + 3:
        raise ImageTooLarge(f"Image too large: over {max_bytes} bytes.")
    try:
        image = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage("image_base64 is not valid base64.") from None
    return image, content_type.lower(), data.get("strokes"), data.get("source", Submission.Source.API)
