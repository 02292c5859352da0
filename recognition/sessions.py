"""Sessions read from the cache and stored in the database: Django's ``cached_db``, made to
keep working when the cache (Redis) is unreachable.

Every request of a visitor reads their session (it holds the anonymous client id that owns
their submissions); from the database that is one query per request, from Redis one GET.
Django's ``cached_db`` already falls back to the database when a cache read fails, but not
when the cache write after that read fails, nor in ``exists`` and ``delete``: with Redis down
those would answer 500. Here every cache step is best effort and the database stays the truth.

Cached copies live at most ``CACHE_SECONDS``: a session deleted (logout) while Redis was
unreachable, whose cached copy Redis still holds when it comes back, stays readable for at
most that long.
"""

import logging

from django.contrib.sessions.backends import cached_db
from django.contrib.sessions.backends.db import SessionStore as DatabaseStore

logger = logging.getLogger(__name__)

CACHE_SECONDS = 300


class SessionStore(cached_db.SessionStore):
    def _cache_age(self, expiry=None) -> int:
        """Seconds to cache: the session's own age (from ``expiry`` when read from the
        database), at most CACHE_SECONDS."""
        age = self.get_expiry_age(expiry=expiry) if expiry is not None else self.get_expiry_age()
        return min(age, CACHE_SECONDS)

    def load(self):
        try:
            data = self._cache.get(self.cache_key)
        except Exception:  # noqa: BLE001 - the cache is down (or the key invalid): ask the database
            data = None
        if data is not None:
            return data
        stored = self._get_session_from_db()
        if not stored:
            return {}
        data = self.decode(stored.session_data)
        try:
            self._cache.set(self.cache_key, data, self._cache_age(stored.expire_date))
        except Exception as exc:  # noqa: BLE001
            logger.warning("session cache unavailable: %s", exc)
        return data

    def exists(self, session_key):
        try:
            if session_key and (self.cache_key_prefix + session_key) in self._cache:
                return True
        except Exception:  # noqa: BLE001
            pass
        return DatabaseStore.exists(self, session_key)

    def save(self, must_create=False):
        DatabaseStore.save(self, must_create)
        try:
            self._cache.set(self.cache_key, self._session, self._cache_age())
        except Exception as exc:  # noqa: BLE001
            logger.warning("session cache unavailable: %s", exc)

    def delete(self, session_key=None):
        DatabaseStore.delete(self, session_key)
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        try:
            self._cache.delete(self.cache_key_prefix + session_key)
        except Exception as exc:  # noqa: BLE001 - see CACHE_SECONDS
            logger.warning(
                "session cache unavailable; a cached copy may outlive this logout by %d s: %s", CACHE_SECONDS, exc
            )
