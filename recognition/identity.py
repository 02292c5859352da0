"""Who an API request speaks for: a signed-in user, or an anonymous visitor known by a client id.

A signed-in user's rows are theirs by ``owner``; an anonymous visitor's rows carry a client id.
A browser keeps cookies (the page sets the CSRF cookie before anything is drawn), so its
client id lives in its session, and a visitor sees what they drew in this browser and nothing
else. A client that sends no cookie at all (curl, a script) would be given a new session on
every request it makes, never to send it back: a database row each, and a fresh per-client
throttle counter each. It gets no session; it is known by its IP address instead, so that it
can still poll what it sent, and its writes are counted per address. Cookieless clients behind
one address share their rows: an API client that wants its own signs in with a token.
"""

import uuid

from django.utils.crypto import salted_hmac
from rest_framework.throttling import BaseThrottle

CLIENT_ID_KEY = "client_id"
# Prefix of the client ids of cookieless clients; a session's are 32 hex digits.
ADDRESS_CLIENT_PREFIX = "ip-"


def client_id_get(request, *, create: bool = False) -> str:
    """The client id for rows this request writes or reads: "" for a signed-in user, the
    visitor's id from their session (none yet: "", unless ``create`` starts one), or, for a
    request with no cookie at all, one derived from its IP address."""
    if request.user is not None and request.user.is_authenticated:
        return ""
    if not request.COOKIES:
        return address_client_id(request)
    client_id = request.session.get(CLIENT_ID_KEY, "")
    if not client_id and create:
        client_id = uuid.uuid4().hex
        request.session[CLIENT_ID_KEY] = client_id
    return client_id


def client_id_for_write(request) -> str:
    """The client id a write stores: the caller's, or for a browser without one yet a new id
    that ``client_id_keep`` puts in its session once the write has succeeded, so that a
    rejected drawing leaves no session row behind."""
    client_id = client_id_get(request)
    if client_id or request.user.is_authenticated:
        return client_id
    return uuid.uuid4().hex


def client_id_keep(request, client_id: str) -> None:
    """Keep a new client id from ``client_id_for_write`` in the visitor's session (a no-op
    for a signed-in user, a cookieless client, or a visitor whose session holds it)."""
    if not client_id or client_id.startswith(ADDRESS_CLIENT_PREFIX) or request.user.is_authenticated:
        return
    if request.session.get(CLIENT_ID_KEY) != client_id:
        request.session[CLIENT_ID_KEY] = client_id


def address_client_id(request) -> str:
    """A stable id for the request's IP address (after NUM_PROXIES trusted proxies, as the
    throttles count it). Keyed with SECRET_KEY: the stored id does not reveal the address."""
    address = BaseThrottle().get_ident(request)
    return ADDRESS_CLIENT_PREFIX + salted_hmac("recognition.identity", address, algorithm="sha256").hexdigest()[:32]
