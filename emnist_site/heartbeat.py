"""Worker heartbeats: each worker writes, for every queue it consumes, the time it last did so to
a Redis key on the broker; health (recognition/services/health.py) and the metrics read them.

Why a key on the broker and not Celery's own ``inspect ping``: a ping is a broadcast that waits
for replies (seconds, and a reply for every worker) on each health probe, while a key is one
GET. Why written from the consumer's event-loop timer: that loop is what takes messages off
the queue, so a worker whose loop is stuck or whose consumer died stops beating, even while
its process lives on.
"""

import json
import logging
import os
import socket
import time

import redis
from celery import bootsteps
from django.conf import settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "emnist:worker-heartbeat:"
# The key outlives the heartbeat's deadline, so a stale one still says how stale it is (the
# metrics report its age); after this long with no worker at all it is simply gone.
KEY_TTL_SECONDS = 3600

_clients: dict[str, redis.Redis] = {}


def heartbeat_interval() -> float:
    return float(getattr(settings, "WORKER_HEARTBEAT_SECONDS", 10))


def heartbeat_max_age() -> float:
    """A heartbeat older than this means no worker: three beats missed, plus slack for a
    busy event loop."""
    return 3 * heartbeat_interval() + 5


def _client(broker_url: str) -> redis.Redis:
    # Short timeouts: a beat runs on the worker's event loop and a read in a health probe;
    # neither may hang on a broker that is down.
    if broker_url not in _clients:
        _clients[broker_url] = redis.Redis.from_url(broker_url, socket_timeout=2, socket_connect_timeout=2)
    return _clients[broker_url]


def heartbeat_write(broker_url: str, queues: list[str], hostname: str) -> None:
    value = json.dumps({"at": time.time(), "hostname": hostname, "pid": os.getpid()})
    pipe = _client(broker_url).pipeline(transaction=False)
    for queue in queues:
        pipe.set(KEY_PREFIX + queue, value, ex=KEY_TTL_SECONDS)
    pipe.execute()


def heartbeat_read(broker_url: str, queue: str) -> dict | None:
    """``{"at", "hostname", "pid", "age"}`` of the last beat of any worker consuming ``queue``,
    or None if none beat within KEY_TTL_SECONDS. Raises redis errors (the caller reports them)."""
    raw = _client(broker_url).get(KEY_PREFIX + queue)
    if raw is None:
        return None
    beat = json.loads(raw)
    beat["age"] = max(0.0, time.time() - beat["at"])
    return beat


class Heartbeat(bootsteps.StartStopStep):
    """A consumer bootstep: starts with the task consumer (after every reconnection too) and
    beats every WORKER_HEARTBEAT_SECONDS for the queues that consumer reads."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent, **kwargs):
        self.timer_entry = None
        self.failing = False
        super().__init__(parent, **kwargs)

    def start(self, c):
        queues = sorted(queue.name for queue in c.task_consumer.queues)
        hostname = c.hostname or socket.gethostname()
        self.beat(c.app.conf.broker_url, queues, hostname)
        self.timer_entry = c.timer.call_repeatedly(
            heartbeat_interval(), self.beat, (c.app.conf.broker_url, queues, hostname), priority=10
        )

    def stop(self, c):
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None

    shutdown = stop

    def beat(self, broker_url: str, queues: list[str], hostname: str) -> None:
        try:
            heartbeat_write(broker_url, queues, hostname)
        except redis.RedisError as exc:
            # One line when it starts failing and one when it recovers, not one per beat.
            if not self.failing:
                logger.warning("worker heartbeat not written (%s); retrying every %s s", exc, heartbeat_interval())
            self.failing = True
        else:
            if self.failing:
                logger.warning("worker heartbeat written again")
            self.failing = False
