"""Tell a waiting request that its prediction is stored, instead of having it poll the row.

The worker pushes onto a per-submission Redis list (``submission:<id>:done``) after the row is
committed; the request blocks on it with BLPOP. A list, not pub/sub: a push that happens
before the request starts waiting is kept (for ``NOTIFY_TTL_SECONDS``), so there is no race.
The row stays the truth: a lost notification only means the request answers 202 and the
client polls. Without a Redis broker (eager mode) nothing is waited for: the task already ran.
"""

import json
import logging
import os
import threading

logger = logging.getLogger(__name__)

NOTIFY_TTL_SECONDS = 60
_clients: dict = {}
_clients_lock = threading.Lock()


def _key(submission_id) -> str:
    return f"submission:{submission_id}:done"


def _redis(read_timeout: float = 5.0):
    """A client on the broker's Redis for this process (pool per pid: gunicorn and Celery fork).

    The read timeout outlasts the longest BLPOP asked for, so a Redis that hangs (rather than
    refusing) cannot hold a request for ever.
    """
    from emnist_site.celery import app

    url = app.conf.broker_url or ""
    if app.conf.task_always_eager or not url.startswith(("redis://", "rediss://")):
        return None
    read_timeout = float(max(5, int(read_timeout) + 2))
    key = (os.getpid(), url, read_timeout)
    client = _clients.get(key)
    if client is None:
        import redis

        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = redis.Redis.from_url(
                    url, socket_connect_timeout=1, socket_timeout=read_timeout, socket_keepalive=True
                )
                _clients[key] = client
    return client


def submission_notify_done(*, submission_ids=(), results: dict | None = None) -> None:
    """Wake the requests waiting for these submissions. Never raises: the row is already stored.

    ``results`` ({id: the stored prediction fields}) travel with the notification as JSON, so
    the request answers without reading the row back; ``submission_ids`` only wake (the
    request then reads the row).
    """
    client = _redis()
    messages = [(i, b"1") for i in submission_ids]
    messages += [(i, json.dumps(fields, separators=(",", ":")).encode()) for i, fields in (results or {}).items()]
    if client is None or not messages:
        return
    try:
        with client.pipeline(transaction=False) as pipe:
            for submission_id, message in messages:
                pipe.rpush(_key(submission_id), message)
                pipe.expire(_key(submission_id), NOTIFY_TTL_SECONDS)
            pipe.execute()
    except Exception as exc:  # noqa: BLE001 - waiting requests fall back to 202 + polling
        logger.warning("could not notify %d submissions: %s", len(messages), exc)


def submission_wait_done(*, submission_id, timeout: float) -> dict | bool | None:
    """Block until the worker says ``submission_id`` is done, up to ``timeout`` seconds.

    Returns the stored prediction fields when the notification carried them, True when
    notified without them, False on timeout, None when there is nothing to wait on (eager
    mode, or Redis unreachable: the caller answers at once).
    """
    client = _redis(read_timeout=timeout)
    if client is None:
        return None
    try:
        # BLPOP takes a float timeout since Redis 6; 0 would mean "for ever".
        popped = client.blpop([_key(submission_id)], timeout=max(timeout, 0.01))
    except Exception as exc:  # noqa: BLE001 - the broker is down: answer 202 now
        logger.warning("could not wait for %s: %s", submission_id, exc)
        return None
    if popped is None:
        return False
    try:
        fields = json.loads(popped[1])
    except ValueError:
        return True
    return fields if isinstance(fields, dict) else True
