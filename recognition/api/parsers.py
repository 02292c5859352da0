"""JSON in, with its cost bounded before it is parsed: the API's JSON parser, and the same
rules for the JSON text of a multipart ``strokes`` field.

A body may be up to settings.REQUEST_MAX_BYTES (a 1.5 MiB image in base64), which is cheap
as one string but not as a million small arrays: json.loads builds every one of them, and
the checks after it walk them again (seconds of CPU for a 7 MiB body of stroke points).
Every array and object starts with a bracket, so counting brackets in the raw bytes (a C
loop, about a millisecond a megabyte) bounds what parsing will build. Nesting is bounded by
Python's recursion limit inside json, which raises RecursionError, a 500 unless caught here.
"""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils import json

# Depth of the deepest body the API takes: {"strokes": [[[x, y, t], ...], ...]} is 4.
MAX_DEPTH = 8
# Arrays and objects in one body: a point is an array, so this is the stroke-point cap
# (recognition.api.inputs.MAX_STROKE_POINTS, 4,000) plus one array per stroke (at most 500)
# and a little room.
MAX_CONTAINERS = 5_000


class JsonTooComplex(ParseError):
    default_code = "json_too_complex"


def json_loads_bounded(data: str | bytes):
    """``json.loads`` (DRF's strict flavour: no NaN or Infinity) that refuses, before parsing,
    more than MAX_CONTAINERS arrays and objects, and after it more than MAX_DEPTH levels.

    Raises:
        JsonTooComplex: too many arrays or objects, or nested too deeply (400).
        ParseError: not JSON (400).
    """
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    brackets = data.count("[") + data.count("{")
    if brackets > MAX_CONTAINERS:
        raise JsonTooComplex(f"JSON too complex: more than {MAX_CONTAINERS} arrays and objects.")
    try:
        value = json.loads(data)
    except RecursionError:
        raise JsonTooComplex(f"JSON nested too deeply: the limit is {MAX_DEPTH} levels.") from None
    except ValueError as exc:  # JSONDecodeError and a bad encoding are both ValueErrors
        raise ParseError(f"JSON parse error - {exc}") from None
    if json_depth(value) > MAX_DEPTH:
        raise JsonTooComplex(f"JSON nested too deeply: the limit is {MAX_DEPTH} levels.")
    return value


def json_depth(value) -> int:
    """Levels of arrays and objects in a parsed JSON value (a scalar is 0), without recursion:
    what was parsed may be nested nearly as deep as the recursion limit."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            node = node.values()
        elif not isinstance(node, list):
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node if isinstance(child, (list, dict)))
    return deepest


class BoundedJSONParser(JSONParser):
    """DRF's JSONParser with ``json_loads_bounded``'s limits (REST_FRAMEWORK's parsers)."""

    def parse(self, stream, media_type=None, parser_context=None):
        # DRF's: a text charset only (a bz2_codec "charset" would inflate a small body).
        encoding = get_encoding(parser_context or {})
        # RequestSizeLimitMiddleware has bounded the body by its Content-Length already.
        data = stream.read() if stream is not None else b""
        try:
            text = data.decode(encoding)
        except UnicodeError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        return json_loads_bounded(text)
