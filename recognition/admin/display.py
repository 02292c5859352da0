"""HTML snippets the admin pages share: drawings as images, JSON as a readable block."""

import base64
import json

from django.utils.html import format_html

from recognition.images import input28_data_url
from recognition.models import Submission

# A drawing larger than this is named by its size rather than inlined into the page.
MAX_INLINE_IMAGE_BYTES = 512 * 1024


def thumbnail(submission: Submission, size: int = 56):
    """The 28x28 input the model saw, scaled up to ``size`` pixels without smoothing."""
    if not submission.input28:
        return "-"
    return format_html(
        '<img src="{}" width="{}" height="{}" style="image-rendering:pixelated;background:#000" alt="28x28">',
        input28_data_url(submission),
        size,
        size,
    )


def image_tag(content_type: str, data: bytes, style: str, alt: str = "drawing"):
    data = bytes(data or b"")
    if not data or len(data) > MAX_INLINE_IMAGE_BYTES:
        return f"{len(data)} bytes"
    src = f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"
    return format_html('<img src="{}" style="{}" alt="{}">', src, style, alt)


def json_block(value) -> str:
    return format_html(
        "<pre style='white-space:pre-wrap;max-height:30em;overflow:auto'>{}</pre>",
        json.dumps(value, indent=1, sort_keys=True),
    )
