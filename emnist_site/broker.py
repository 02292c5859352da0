"""kombu's Redis transport, with one fix: closing a channel after a broker outage must not kill
the worker. settings.CELERY_BROKER_TRANSPORT selects it for redis:// and rediss:// brokers.

The failure it fixes (kombu 5.7.0): the broker goes away while a task is unacknowledged
(acks_late). The worker's consumer calls ``Connection.collect()``, whose channel closing stops
at the first channel that cannot reach Redis and then drops the transport's client
(``transport.client = None``). The consumer's restart then closes the channels left over;
closing one restores its unacknowledged messages, which needs a new connection pool, whose
parameters are read from the dropped client: ``AttributeError: 'NoneType' object has no
attribute 'hostname'`` in ``restore_unacked_once``. Celery does not count an AttributeError as a
connection error, so the worker stops for good ("Unrecoverable error").

With the client gone, Redis cannot be reached from that channel anyway. Nothing is lost by not
restoring there: the message is still in Redis's ``unacked`` hash (kombu's ack emulation), and
any worker puts it back on its queue after the visibility timeout; if Redis lost its data, the
pending-row sweep (recognition/services, SUBMISSION_REQUEUE_*) queues the row again.
"""

import logging

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


class Transport(redis.Transport):
    Channel = Channel
