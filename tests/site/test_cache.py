"""The Redis cache backend (emnist_site.cache): one redis-py client a pool, Django's behaviour otherwise."""

from emnist_site.cache import RedisCache
from emnist_site.env import cache_from_url


def a_cache(url: str) -> RedisCache:
    config = cache_from_url(url)
    assert config["BACKEND"] == "emnist_site.cache.RedisCache"
    return RedisCache(config["LOCATION"], {"OPTIONS": config["OPTIONS"], "KEY_PREFIX": "test-cache"})


def test_every_call_on_a_pool_gets_the_same_client():
    cache = a_cache("redis://127.0.0.1:1/0")  # nothing is connected to build a client
    client = cache._cache.get_client("a")
    assert cache._cache.get_client("b") is client
    assert cache._cache.get_client("c", write=True) is client  # one server: one pool for both


def test_it_stores_counts_and_deletes_as_djangos_does(redis_url):
    cache = a_cache(redis_url)
    cache.set("greeting", {"hello": "world"}, 30)
    assert cache.get("greeting") == {"hello": "world"}
    assert cache.add("counter", 0, 30) is True
    assert [cache.incr("counter") for _ in range(3)] == [1, 2, 3]
    cache.delete_many(["greeting", "counter"])
    assert cache.get("greeting") is None and cache.get("counter") is None
