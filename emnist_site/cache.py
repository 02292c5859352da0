"""Django's Redis cache, keeping one redis-py client a connection pool.

Django's ``RedisCacheClient.get_client`` builds a new ``redis.Redis`` for every cache call (a
session read, each throttle INCR); building one sets up its table of response callbacks, and
the profile of a POST (bench/RESULTS.md, issue 20) found that at 4 % of the web's CPU. A
client is a thin, thread-safe handle on its pool, so one a pool serves every call.
"""

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient


class RedisCacheClient(DjangoRedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisCacheClient
