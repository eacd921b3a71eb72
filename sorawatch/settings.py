"""One typed settings object, loaded once at start.

Sources, lowest to highest precedence: the defaults below, a TOML file
(``--config PATH`` or ``SORAWATCH_CONFIG``), then ``SORAWATCH_<TABLE>_<KEY>``
environment variables. Anything wrong stops the program with the key's name.
This is the only module that reads the environment.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sorawatch.errors import SettingsError
from sorawatch.redact import redact_url
from sorawatch.vocabulary import LANGS

ENV_PREFIX = "SORAWATCH_"
MIN_SECRET = 32  # web.secret, web.admin_token, web.metrics_token: guessable below this


def _range(lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
    return {"range": (lo, hi)}


def _choice(*values: str) -> dict[str, Any]:
    return {"choices": values}


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str | None = None  # None: `sorawatch run` starts an embedded Redis
    prefix: str = field(default="sw", metadata={"pattern": "name"})


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str | None = None  # None: mail goes to the outbox folder
    port: int = field(default=587, metadata=_range(1, 65535))
    username: str | None = None
    password: str | None = field(default=None, metadata={"secret": True})
    starttls: bool = False
    tls: bool = False
    from_: str = "Sorawatch <alerts@localhost>"
    timeout: float = field(default=30.0, metadata=_range(0.1, 600))
    concurrency: int = field(default=4, metadata=_range(1, 64))
    deadline: float = field(default=60.0, metadata=_range(0.1, 3600))
    # Messages per second for the whole deployment, shared through Redis; 0: no limit.
    rate: float = field(default=0.0, metadata=_range(0, 100000))


@dataclass(frozen=True, slots=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = field(default=8000, metadata=_range(0, 65535))
    base_url: str | None = None  # None: http://host:port
    secret: str | None = field(default=None, metadata={"secret": True})
    admin_token: str | None = field(default=None, metadata={"secret": True})
    subscribe_rate: int = field(default=10, metadata=_range(1, 100000))  # per client per hour
    # An unconfirmed request is kept this long (outside the event log), then forgotten.
    pending_ttl: int = field(default=48 * 3600, metadata=_range(1, 48 * 3600))
    # At most one confirmation mail per address (case and +tag folded) in this many seconds.
    confirm_interval: int = field(default=24 * 3600, metadata=_range(1, 30 * 86400))
    # Proxies (CIDRs) whose X-Forwarded-For is believed; empty: the peer is the client.
    trusted_proxies: list[str] = field(default_factory=list)
    # Bearer token for GET /metrics; unset: /metrics is open.
    metrics_token: str | None = field(default=None, metadata={"secret": True})

    @property
    def public_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    allow_private: bool = False
    timeout: float = field(default=15.0, metadata=_range(0.1, 300))
    retry_schedule: list[int] = field(
        default_factory=lambda: [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
    )
    disable_after: int = field(default=3 * 86400, metadata=_range(0, None))  # seconds failing
    concurrency: int = field(default=16, metadata=_range(1, 256))


@dataclass(frozen=True, slots=True)
class WatcherSettings:
    interval: int = field(default=900, metadata=_range(10, 86400 * 7))
    jitter: float = field(default=0.1, metadata=_range(0, 1))
    max_backoff: int = field(default=6 * 3600, metadata=_range(1, 86400 * 7))
    max_bytes: int = field(default=5 * 1024 * 1024, metadata=_range(1024, 1 << 31))
    max_redirects: int = field(default=5, metadata=_range(0, 20))
    connect_timeout: float = field(default=10.0, metadata=_range(0.1, 300))
    read_timeout: float = field(default=20.0, metadata=_range(0.1, 600))
    concurrency: int = field(default=8, metadata=_range(1, 256))
    user_agent: str = "sorawatch/0.1 (+https://github.com/sorawatch/sorawatch)"
    lexicon: str | None = None  # path to a product lexicon; None: the shipped sora.toml
    lease: int = field(default=120, metadata=_range(5, 3600))


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    batch_size: int = field(default=250, metadata=_range(1, 10000))
    window_days: int = field(default=7, metadata=_range(1, 365))
    retry_schedule: list[int] = field(
        default_factory=lambda: [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
    )
    max_age_days: int = field(default=30, metadata=_range(1, 3650))
    confirm_headline: bool = False


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = field(default="INFO", metadata=_choice("DEBUG", "INFO", "WARNING", "ERROR"))
    json: bool = False


@dataclass(frozen=True, slots=True)
class DataSettings:
    dir: str | None = None  # None: the user's data directory
    outbox: str | None = None  # None: <dir>/outbox


@dataclass(frozen=True, slots=True)
class FeedSettings:
    url: str
    name: str
    lang: str | None = field(default=None, metadata=_choice(*LANGS))
    interval: int | None = field(default=None, metadata=_range(10, 86400 * 7))
    trust: str = field(default="press", metadata=_choice("press", "official"))


@dataclass(frozen=True, slots=True)
class Settings:
    redis: RedisSettings = field(default_factory=RedisSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    web: WebSettings = field(default_factory=WebSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    watcher: WatcherSettings = field(default_factory=WatcherSettings)
    workers: WorkerSettings = field(default_factory=WorkerSettings)
    log: LogSettings = field(default_factory=LogSettings)
    data: DataSettings = field(default_factory=DataSettings)
    feeds: tuple[FeedSettings, ...] = ()
    now: datetime | None = None  # the fixed clock (`sorawatch.clock`); None: the real clock
    source: str | None = None  # the file the settings came from, for messages

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def with_redis_url(self, url: str) -> Settings:
        return self.replace(redis=dataclasses.replace(self.redis, url=url))

    @property
    def data_dir(self) -> Path:
        if self.data.dir:
            return Path(self.data.dir).expanduser()
        import platformdirs

        return Path(platformdirs.user_data_dir("sorawatch"))

    @property
    def outbox_dir(self) -> Path:
        return Path(self.data.outbox).expanduser() if self.data.outbox else self.data_dir / "outbox"


TABLES: dict[str, type] = {
    f.name: typing.get_type_hints(Settings)[f.name]
    for f in dataclasses.fields(Settings)
    if f.name not in ("feeds", "now", "source")
}
# Settings outside any table: a top-level key in the file, ``SORAWATCH_<KEY>`` in the env.
TOP_LEVEL = ("now",)


def _toml_key(name: str) -> str:
    return name.rstrip("_")  # `from_` is `from` in TOML


def _coerce(key: str, value: Any, hint: Any, meta: Mapping[str, Any], *, from_env: bool) -> Any:
    """Check one value against its annotation and metadata; return it typed."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        if value is None or (from_env and value == ""):
            return None
        return _coerce(key, value, inner[0], meta, from_env=from_env)
    if origin is list:
        if from_env and isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
            value = parts
        if not isinstance(value, list):
            raise SettingsError(f"{key}: expected a list, got {_show(value)}")
        return [
            _coerce(f"{key}[{i}]", v, args[0], meta, from_env=from_env) for i, v in enumerate(value)
        ]
    if hint is bool:
        if from_env and isinstance(value, str):
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
        if not isinstance(value, bool):
            raise SettingsError(f"{key}: expected true or false, got {_show(value)}")
        return value
    if hint in (int, float):
        if from_env and isinstance(value, str):
            try:
                value = hint(value.strip())
            except ValueError:
                raise SettingsError(f"{key}: expected a number, got {_show(value)}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(f"{key}: expected a number, got {_show(value)}")
        if hint is int and not isinstance(value, int):
            if not float(value).is_integer():
                raise SettingsError(f"{key}: expected a whole number, got {_show(value)}")
            value = int(value)
        lo, hi = meta.get("range", (None, None))
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise SettingsError(f"{key}: {value} is out of range ({_bounds(lo, hi)})")
        return hint(value)
    if hint is str:
        if not isinstance(value, str):
            raise SettingsError(f"{key}: expected a string, got {_show(value)}")
        choices = meta.get("choices")
        if choices and value not in choices:
            raise SettingsError(f"{key}: {value!r} is not one of {', '.join(choices)}")
        if meta.get("pattern") == "name" and not value.replace("-", "").replace("_", "").isalnum():
            raise SettingsError(f"{key}: {value!r} may hold only letters, digits, - and _")
        return value
    raise SettingsError(f"{key}: unsupported setting type {hint!r}")  # pragma: no cover


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value[:60])
    return f"{type(value).__name__} {value!r}"[:80]


def _bounds(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"{lo} to {hi}"
    return f"at least {lo}" if lo is not None else f"at most {hi}"


def _build(cls: type, table: str, raw: Any, env: Mapping[str, str]) -> Any:
    """Build one settings table from its TOML values and its environment overrides."""
    if not isinstance(raw, dict):
        raise SettingsError(f"{table}: expected a table, got {_show(raw)}")
    hints = typing.get_type_hints(cls)
    known = {_toml_key(f.name): f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in known:
            raise SettingsError(f"{table}.{key}: unknown setting (known: {', '.join(known)})")
    values: dict[str, Any] = {}
    for name, f in known.items():
        env_name = f"{ENV_PREFIX}{table.upper()}_{name.upper()}"
        if env_name in env:
            values[f.name] = _coerce(
                env_name, env[env_name], hints[f.name], f.metadata, from_env=True
            )
        elif name in raw:
            values[f.name] = _coerce(
                f"{table}.{name}", raw[name], hints[f.name], f.metadata, from_env=False
            )
    return cls(**values)


def _instant(key: str, value: Any) -> datetime | None:
    """An ISO 8601 instant with a time zone (a TOML datetime or a string); None when unset."""
    example = "an ISO 8601 instant such as 2024-02-15T10:00:00Z"
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise SettingsError(f"{key}: expected {example}, got {_show(value)}") from None
    elif isinstance(value, datetime):
        parsed = value
    else:
        raise SettingsError(f"{key}: expected {example}, got {_show(value)}")
    if parsed.tzinfo is None:
        raise SettingsError(
            f"{key}: {str(value)!r} has no time zone; add Z (UTC) or an offset such as +01:00"
        )
    return parsed


def _build_feeds(raw: Any, origin: str) -> tuple[FeedSettings, ...]:
    if not isinstance(raw, list):
        raise SettingsError(f"feeds: expected [[feeds]] tables, got {_show(raw)} in {origin}")
    feeds: list[FeedSettings] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        key = f"feeds[{i}]"
        if not isinstance(item, dict):
            raise SettingsError(f"{key}: expected a table in {origin}")
        for required in ("url", "name"):
            if required not in item:
                raise SettingsError(f"{key}.{required}: missing in {origin}")
        feed = _build(FeedSettings, key, item, {})
        parts = urlsplit(feed.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SettingsError(f"{key}.url: {feed.url!r} is not an http(s) URL")
        if feed.url in seen:
            raise SettingsError(f"{key}.url: {feed.url!r} is listed twice")
        seen.add(feed.url)
        feeds.append(feed)
    return tuple(feeds)


def default_feeds() -> tuple[FeedSettings, ...]:
    """The shipped list of real feeds (``sorawatch/data/feeds.toml``)."""
    text = resources.files("sorawatch").joinpath("data/feeds.toml").read_text("utf-8")
    return _build_feeds(tomllib.loads(text).get("feeds", []), "the default feed list")


def load_settings(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Load settings from ``path`` (or ``SORAWATCH_CONFIG``) and the environment.

    Raises SettingsError naming the key (or the file) that is wrong.
    """
    env = os.environ if env is None else env
    if path is None:
        path = env.get(f"{ENV_PREFIX}CONFIG") or None
    raw: dict[str, Any] = {}
    source: str | None = None
    if path is not None:
        p = Path(path).expanduser()
        source = str(p)
        try:
            text = p.read_text("utf-8")
        except FileNotFoundError:
            raise SettingsError(f"config: file {source} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"config: cannot read {source}: {exc}") from None
        if not text.strip():
            raise SettingsError(f"config: {source} is empty")
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config: {source} is not valid TOML: {exc}") from None
    for key in raw:
        if key not in TABLES and key != "feeds" and key not in TOP_LEVEL:
            known = ", ".join([*TABLES, "feeds", *TOP_LEVEL])
            raise SettingsError(f"{key}: unknown table (known: {known})")
    tables = {name: _build(cls, name, raw.get(name, {}), env) for name, cls in TABLES.items()}
    feeds = _build_feeds(raw["feeds"], source or "config") if "feeds" in raw else default_feeds()
    now_env = f"{ENV_PREFIX}NOW"
    now = _instant(now_env, env[now_env]) if now_env in env else _instant("now", raw.get("now"))
    settings = Settings(**tables, feeds=feeds, now=now, source=source)
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    """Checks that span several keys."""
    if settings.smtp.tls and settings.smtp.starttls:
        raise SettingsError("smtp.tls: tls and starttls cannot both be true")
    if bool(settings.smtp.username) != bool(settings.smtp.password):
        raise SettingsError("smtp.username: username and password go together")
    if settings.redis.url is not None:
        scheme = urlsplit(settings.redis.url).scheme
        if scheme not in ("redis", "rediss", "unix"):
            shown = redact_url(settings.redis.url)
            raise SettingsError(f"redis.url: {shown!r} is not a redis:// URL")
    if settings.web.base_url is not None:
        parts = urlsplit(settings.web.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SettingsError(f"web.base_url: {settings.web.base_url!r} is not an http(s) URL")
    for name in ("secret", "admin_token", "metrics_token"):
        value = getattr(settings.web, name)
        if value is not None and len(value) < MIN_SECRET:
            raise SettingsError(
                f"web.{name}: at least {MIN_SECRET} characters, got {len(value)}"
                " (e.g. the output of `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
            )
    for i, cidr in enumerate(settings.web.trusted_proxies):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise SettingsError(
                f"web.trusted_proxies[{i}]: {cidr!r} is not an address or CIDR"
            ) from None
    for name in ("webhooks", "workers"):
        schedule = getattr(settings, name).retry_schedule
        if not schedule or any(s < 0 for s in schedule):
            raise SettingsError(f"{name}.retry_schedule: needs at least one delay, none negative")


def env_names() -> list[str]:
    """Every environment variable name that settings read (for docs and checks)."""
    names = [f"{ENV_PREFIX}CONFIG", *(f"{ENV_PREFIX}{key.upper()}" for key in TOP_LEVEL)]
    for table, cls in TABLES.items():
        for f in dataclasses.fields(cls):
            names.append(f"{ENV_PREFIX}{table.upper()}_{_toml_key(f.name).upper()}")
    return names


def describe() -> list[tuple[str, str, str]]:
    """(toml key, env name, default) for every setting, for the README table."""
    rows = [(key, f"{ENV_PREFIX}{key.upper()}", "None") for key in TOP_LEVEL]
    for table, cls in TABLES.items():
        defaults = cls()
        for f in dataclasses.fields(cls):
            key = _toml_key(f.name)
            value = getattr(defaults, f.name)
            rows.append(
                (f"{table}.{key}", f"{ENV_PREFIX}{table.upper()}_{key.upper()}", repr(value))
            )
    return rows
