"""Reading the environment for emnist_site/settings.py: typed values through environs, URLs,
rates and crontabs checked. A malformed value stops start-up with an ImproperlyConfigured
that names the variable and what it must be.
"""

import re
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from celery.schedules import ParseException, crontab
from django.core.exceptions import ImproperlyConfigured
from environs import Env, EnvError

env = Env()

KINDS = {
    "bool": "a boolean (1/0, true/false)",
    "int": "an integer",
    "float": "a number",
    "json": "a JSON object",
    "log_level": "a log level (DEBUG, INFO, WARNING, ERROR)",
}


def read(kind: str, name: str, default, *, minimum: float | None = None):
    """env.<kind>(name, default) as an ImproperlyConfigured that names the variable and its value."""
    try:
        value = getattr(env, kind)(name, default)
        if kind == "json" and not isinstance(value, dict):
            raise EnvError(name)
    except EnvError:
        raise ImproperlyConfigured(f"{name} must be {KINDS[kind]}, got {env.str(name)!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be {minimum} or more, got {value}")
    return value


def checked_url(name: str, value: str, schemes: tuple[str, ...], *, must: str = "") -> str:
    """`value` when its scheme is one of `schemes` and its port, if any, a number."""
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        *others, last = (f"{scheme}://" for scheme in schemes)
        must = must or f"start with {', '.join(others)} or {last}"
        raise ImproperlyConfigured(f"{name} must {must}, got {value!r}")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked for it
    except ValueError:
        raise ImproperlyConfigured(f"{name} {value!r} has a malformed port") from None
    return value


def database_from_url(url: str, base_dir: Path) -> dict:
    """postgres://user:pass@host:port/name or sqlite:///path (relative to `base_dir`) as a DATABASES entry."""
    checked_url("DATABASE_URL", url, ("postgres", "postgresql", "pgsql", "sqlite"))
    config = dj_database_url.parse(url)
    if config["ENGINE"].endswith("sqlite3"):
        # In memory, the web and worker processes would each see a database of their own.
        if config["NAME"] in ("", ":memory:"):
            raise ImproperlyConfigured(f"DATABASE_URL {url!r} has no file path (sqlite:////abs/path.db)")
        return {"ENGINE": config["ENGINE"], "NAME": str(base_dir / config["NAME"])}
    if not config["NAME"]:
        raise ImproperlyConfigured(f"DATABASE_URL {url!r} has no database name")
    config.update(CONN_MAX_AGE=read("int", "DB_CONN_MAX_AGE", 60, minimum=0), CONN_HEALTH_CHECKS=True)
    return config


def cache_from_url(url: str) -> dict:
    """redis://host:port/db (shared by every process) or locmem:// (this process only)."""
    if checked_url("CACHE_URL", url, ("redis", "rediss", "locmem")).startswith("locmem:"):
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "emnist"}
    return {
        "BACKEND": "emnist_site.cache.RedisCache",  # one client a pool, not one a call
        "LOCATION": url,
        "KEY_PREFIX": "emnist",
        # A Redis that does not answer must not hang requests: the throttle gives up and lets them through.
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }


def redis_url(name: str) -> str:
    """A Redis URL, or "" when unset (memory:// is kombu's in-process broker)."""
    value = env.str(name, "")
    return value and checked_url(name, value, ("redis", "rediss", "memory"), must="be a redis:// URL")


def rate(name: str, default: str) -> str | None:
    """A request rate such as "60/min" (per s, sec, m, min, h, hour, d, day), or "off" (None)."""
    value = env.str(name, default).strip().lower()
    if value == "off":
        return None
    if not re.fullmatch(r"[1-9]\d*/(s|sec|second|m|min|minute|h|hour|d|day)", value):
        raise ImproperlyConfigured(f"{name} must be a rate like 60/min (per s, min, hour, day) or off, got {value!r}")
    return value


def cron(name: str, default: str) -> str:
    """Five crontab fields (minute hour day-of-month month day-of-week), as celery beat reads them."""
    value = env.str(name, default)
    try:
        minute, hour, day_of_month, month_of_year, day_of_week = value.split()
        crontab(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year, day_of_week=day_of_week
        )
    except (ValueError, ParseException) as error:  # a wrong field count, or a field out of range
        raise ImproperlyConfigured(
            f"{name} must be a crontab (minute hour day-of-month month day-of-week), got {value!r}: {error}"
        ) from None
    return value
