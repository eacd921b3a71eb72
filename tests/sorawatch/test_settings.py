"""Settings: defaults, file, environment, and a clear message naming the key for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from redis import Redis

from sorawatch.errors import SettingsError
from sorawatch.settings import default_feeds, describe, env_names, load_settings


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sorawatch.toml"
    path.write_text(text, "utf-8")
    return path


def test_defaults_need_no_file_and_ship_real_feeds() -> None:
    settings = load_settings(env={})
    assert settings.redis.url is None
    assert settings.smtp.host is None
    urls = [f.url for f in settings.feeds]
    assert "https://openai.com/news/rss.xml" in urls
    assert any("news.google.com" in u and "hl=ar" in u for u in urls)
    assert any("news.google.com" in u and "hl=en-US" in u for u in urls)
    assert {f.lang for f in default_feeds()} == {"ar", "en"}


def test_file_then_environment_wins(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
[redis]
url = "redis://127.0.0.1:6379/1"
[smtp]
host = "smtp.example.com"
from = "Alerts <a@example.com>"
[webhooks]
retry_schedule = [0, 1, 2]
[[feeds]]
url = "https://example.com/feed.xml"
name = "Example"
lang = "ar"
interval = 60
""",
    )
    env = {
        "SORAWATCH_REDIS_URL": "redis://127.0.0.1:6380/0",
        "SORAWATCH_WEBHOOKS_ALLOW_PRIVATE": "true",
    }
    settings = load_settings(path, env=env)
    assert settings.redis.url == "redis://127.0.0.1:6380/0"
    assert settings.smtp.host == "smtp.example.com"
    assert settings.smtp.from_ == "Alerts <a@example.com>"
    assert settings.webhooks.allow_private is True
    assert settings.webhooks.retry_schedule == [0, 1, 2]
    assert [(f.name, f.lang, f.interval) for f in settings.feeds] == [("Example", "ar", 60)]


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, "[web]\nport = 8123\n")
    assert load_settings(env={"SORAWATCH_CONFIG": str(path)}).web.port == 8123


BAD = [
    ("[web]\nport = 'eighty'\n", "web.port: expected a number"),
    ("[web]\nport = 70000\n", "web.port: 70000 is out of range"),
    ("[web]\nport = 80.5\n", "web.port: expected a whole number"),
    ("[smtp]\nstarttls = 'yes'\n", "smtp.starttls: expected true or false"),
    ("[smtp]\nhots = 'x'\n", "smtp.hots: unknown setting"),
    ("[smpt]\nhost = 'x'\n", "smpt: unknown table"),
    ("[log]\nlevel = 'LOUD'\n", "log.level: 'LOUD' is not one of"),
    ("[webhooks]\nretry_schedule = 5\n", "webhooks.retry_schedule: expected a list"),
    ("[webhooks]\nretry_schedule = [1, -1]\n", "webhooks.retry_schedule"),
    ("[watcher]\nmax_bytes = 10\n", "watcher.max_bytes: 10 is out of range"),
    ("[redis]\nurl = 'http://x'\n", "redis.url"),
    ("[redis]\nprefix = 'a b'\n", "redis.prefix"),
    ("[web]\nbase_url = 'watch.example.com'\n", "web.base_url"),
    ("[smtp]\ntls = true\nstarttls = true\n", "smtp.tls"),
    ("[smtp]\nusername = 'u'\n", "smtp.username"),
    ("web = 3\n", "web: expected a table"),
    ("[[feeds]]\nname = 'x'\n", "feeds[0].url: missing"),
    ("[[feeds]]\nurl = 'ftp://x/y'\nname = 'x'\n", "feeds[0].url"),
    ("[[feeds]]\nurl = 'https://x/y'\nname = 'x'\nlang = 'fr'\n", "feeds[0].lang"),
    ("[[feeds]]\nurl = 'https://x/y'\nname = 'x'\ninterval = 1\n", "feeds[0].interval"),
    ("[[feeds]]\nurl = 'https://x/y'\nname = 'x'\ncolour = 'red'\n", "feeds[0].colour: unknown"),
    (
        "[[feeds]]\nurl = 'https://x/y'\nname = 'a'\n[[feeds]]\nurl = 'https://x/y'\nname = 'b'\n",
        "listed twice",
    ),
    ("this is = = not toml", "not valid TOML"),
    ("   \n", "is empty"),
]


@pytest.mark.hostile
@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_file_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=_re(message)):
        load_settings(_write(tmp_path, text), env={})


@pytest.mark.hostile
@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SORAWATCH_WEB_PORT", "x", "SORAWATCH_WEB_PORT: expected a number"),
        ("SORAWATCH_WEBHOOKS_ALLOW_PRIVATE", "maybe", "SORAWATCH_WEBHOOKS_ALLOW_PRIVATE"),
        ("SORAWATCH_WATCHER_JITTER", "2", "SORAWATCH_WATCHER_JITTER: 2.0 is out of range"),
        ("SORAWATCH_REDIS_URL", "mysql://x", "redis.url"),
    ],
)
def test_bad_environment_names_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=_re(message)):
        load_settings(env={name: value})


@pytest.mark.hostile
def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", env={})


@pytest.mark.hostile
@pytest.mark.parametrize("text", ["[web]\nport = 'x'\n", "[nope]\n", ""])
def test_bad_settings_exit_2_and_write_nothing(
    tmp_path: Path, redis_url: str, redis: Redis, text: str
) -> None:
    path = _write(tmp_path, text)
    env = {"PATH": "/usr/bin:/bin", "SORAWATCH_REDIS_URL": redis_url}
    proc = subprocess.run(
        [sys.executable, "-m", "sorawatch.cli", "--config", str(path), "events", "--count"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "bad settings" in proc.stderr
    assert redis.dbsize() == 0


def test_every_setting_has_an_env_name() -> None:
    names = env_names()
    assert "SORAWATCH_REDIS_URL" in names
    assert "SORAWATCH_SMTP_FROM" in names
    assert len({row[1] for row in describe()}) == len(describe())


def _re(text: str) -> str:
    import re

    return re.escape(text)


@pytest.mark.parametrize("name", ["SECRET", "ADMIN_TOKEN", "METRICS_TOKEN"])
def test_short_web_secrets_are_refused(name: str) -> None:
    with pytest.raises(SettingsError, match=rf"web\.{name.lower()}: at least 32 characters, got 1"):
        load_settings(env={f"SORAWATCH_WEB_{name}": "x"})
    # The bound is 32, not merely "more than one": 31 is still refused.
    with pytest.raises(
        SettingsError, match=rf"web\.{name.lower()}: at least 32 characters, got 31"
    ):
        load_settings(env={f"SORAWATCH_WEB_{name}": "z" * 31})
    assert getattr(load_settings(env={f"SORAWATCH_WEB_{name}": "y" * 32}).web, name.lower())


def test_trusted_proxies_must_be_addresses_or_cidrs() -> None:
    ok = load_settings(env={"SORAWATCH_WEB_TRUSTED_PROXIES": "10.0.0.0/8, 2001:db8::/32,127.0.0.1"})
    assert ok.web.trusted_proxies == ["10.0.0.0/8", "2001:db8::/32", "127.0.0.1"]
    with pytest.raises(SettingsError, match=r"web\.trusted_proxies\[1\]: 'proxy\.lan'"):
        load_settings(env={"SORAWATCH_WEB_TRUSTED_PROXIES": "10.0.0.0/8,proxy.lan"})
