"""The web and the workers signalling each other through the broker's Redis.

* A waiting request is told that its prediction is stored, instead of polling the row.
* At most one prediction task is queued at a time for submissions (the "wake-up"), since
  one task predicts every pending row (see ``prediction_wake_claim``).

Telling a waiting request:

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

import redis
from celery import current_app

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
    conf = current_app.conf
    url = conf.broker_url or ""
    if conf.task_always_eager or not url.startswith(("redis://", "rediss://")):
        return None
    read_timeout = float(max(5, int(read_timeout) + 2))
    key = (os.getpid(), url, read_timeout)
    client = _clients.get(key)
    if client is None:
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


WAKE_KEY = "predictions:wake"
# Outlives any normal wait for a free worker; bounds how long a lost task message (a worker
# killed with it) can make new submissions skip queueing their own.
WAKE_TTL_SECONDS = 5


def prediction_wake_claim() -> bool:
    """True if the caller should queue a prediction task: none is queued yet.

    A task drains every pending submission (``submission_predict``) and clears the mark when
    it starts, before it claims rows. So a row committed while the mark is set is claimed by
    the task that set it, and under load one task serves a whole batch of requests instead
    of each request queueing a task that finds its row already predicted. Without Redis
    (eager mode, or Redis unreachable) the answer is True: queue as before.
    """
    client = _redis()
    if client is None:
        return True
    try:
        return bool(client.set(WAKE_KEY, b"1", nx=True, ex=WAKE_TTL_SECONDS))
    except Exception as exc:  # noqa: BLE001 - the broker is down: queueing will say so
        logger.warning("could not check the prediction wake-up: %s", exc)
        return True


def prediction_wake_release() -> None:
    """Clear the mark: the next submission queues its own task. Called by a task as it starts
    (before claiming rows), and by a request whose task could not be queued. Never raises."""
    client = _redis()
    if client is None:
        return
    try:
        client.delete(WAKE_KEY)
    except Exception as exc:  # noqa: BLE001 - the mark expires by itself
        logger.warning("could not clear the prediction wake-up: %s", exc)


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
