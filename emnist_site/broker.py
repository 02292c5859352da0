"""kombu's Redis transport, with one fix: using a channel after a broker outage closed it must
not kill the worker. settings.CELERY_BROKER_TRANSPORT selects it for redis:// and rediss://.

The failure it fixes (kombu 5.7.0). The broker goes away while tasks are unacknowledged
(acks_late). The worker's consumer calls ``Connection.collect()``, which closes the channels it
can and then drops the transport's client (``transport.client = None``); closed channels lose
their transport too (``channel.connection = None``). Afterwards two things still use such a
channel, and both need a new connection pool, whose parameters are read from what was dropped:

- the consumer's restart closes the channels left over, and closing one restores its
  unacknowledged messages: ``AttributeError: 'NoneType' object has no attribute 'hostname'``
  in ``restore_unacked_once``;
- a task that was running during the outage finishes after the reconnection, and its ack goes
  to the old channel: ``AttributeError: 'NoneType' object has no attribute 'client'``.

Celery takes an AttributeError for a bug, not a connection error, so the worker stops for good
("Unrecoverable error"). Here both become what they are, a broker that cannot be reached from
that channel: restoring is skipped, and anything else raises redis's ConnectionError, which
Celery handles (an ack is logged as "Couldn't ack" and the worker carries on).

Nothing is lost: an unacknowledged message stays in Redis's ``unacked`` hash (kombu's ack
emulation) and any worker puts it back on its queue after the visibility timeout, where the
task finds its row done; if Redis lost its data, the pending-row sweep (SUBMISSION_REQUEUE_*)
queues the row again.
"""

import logging

import redis as redis_py
from kombu.transport import redis

logger = logging.getLogger(__name__)


class QoS(redis.QoS):
    def restore_unacked(self, client=None):
        transport = self.channel.connection
        if client is None and (transport is None or transport.client is None):
            logger.warning(
                "broker connection already closed: %d unacknowledged message(s) are left to "
                "the visibility timeout instead of being restored now",
                len(self._delivered),
            )
            self._delivered.clear()
            return
        super().restore_unacked(client)


class Channel(redis.Channel):
    QoS = QoS

    def _connparams(self, asynchronous=False):
        if self.connection is None or self.connection.client is None:
            raise redis_py.ConnectionError("this channel's broker connection was closed after an outage")
        return super()._connparams(asynchronous=asynchronous)


class Transport(redis.Transport):
    Channel = Channel
