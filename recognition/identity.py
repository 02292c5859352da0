"""Who an API request speaks for: a signed-in user, or an anonymous visitor known by a client id.

A signed-in user's rows are theirs by ``owner``; an anonymous visitor's rows carry the client
id kept in their session, so a visitor sees what they drew in this browser and nothing else.
"""

import uuid

CLIENT_ID_KEY = "client_id"


def client_id_get(request, *, create: bool = False) -> str:
    """The client id for rows this request writes or reads: "" for a signed-in user, else the
    visitor's id from their session ("" when they have none yet, unless ``create`` starts one)."""
    if request.user is not None and request.user.is_authenticated:
        return ""
    client_id = request.session.get(CLIENT_ID_KEY, "")
    if not client_id and create:
        client_id = uuid.uuid4().hex
        request.session[CLIENT_ID_KEY] = client_id
    return client_id
