"""What the bench scripts share: fast sinks, a Redis of their own, worker processes, facts.

- ``SmtpSink``: Postfix's ``smtp-sink`` (C), fetched from Debian's ``postfix`` package
  with ``apt-get download`` and unpacked with ``dpkg -x`` into ``bench/.cache/`` (no
  mail system installed or started). aiosmtpd tops out near 500 messages/s, far below
  what the workers reach; smtp-sink takes several thousand.
- ``HttpSink``: nginx (C, from Debian's ``nginx`` package, unpacked the same way)
  answering every POST with 200 and logging ``$msec $http_webhook_id`` per request,
  so a bench counts what arrived and when. A Python receiver would be the bottleneck.
- ``WorkerPool``: W spawned processes, each an RQ ``SimpleWorker`` (burst) running the
  real job functions with the real runtime; each reports its peak RSS (VmHWM) and its
  RSS after its first job, so memory growth over a run is visible.
- ``machine()``: nproc, CPU model, Python version, date, for the results table.

Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import multiprocessing
import os
import platform
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sorawatch.testing.ports import free_port
from sorawatch.testing.redis import RedisServer

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CACHE = BENCH / ".cache"


def machine() -> str:
    """One line: nproc, CPU model, Python version, date (UTC)."""
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    today = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d")
    return f"nproc={os.cpu_count()} cpu={model!r} python={platform.python_version()} date={today}"


def rss_kb(pid: int | str = "self", field: str = "VmRSS") -> int:
    """A process's resident memory (``VmRSS``) or peak (``VmHWM``) in KiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def debian_tree(package: str) -> Path:
    """Debian ``package`` unpacked (``dpkg -x``) into ``bench/.cache/<package>``; downloaded
    once with ``apt-get download``. Raises RuntimeError when apt cannot fetch it."""
    root = CACHE / package
    if (root / ".done").exists():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    download = CACHE / "download"
    download.mkdir(exist_ok=True)
    debs = sorted(download.glob(f"{package}_*.deb"))
    if not debs:
        done = subprocess.run(
            ["apt-get", "download", package], cwd=download, capture_output=True, text=True
        )
        debs = sorted(download.glob(f"{package}_*.deb"))
        if not debs:
            raise RuntimeError(f"apt-get download {package} failed: {done.stderr.strip()[-500:]}")
    if root.exists():
        shutil.rmtree(root)
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(root)], check=True)
    (root / ".done").touch()
    return root


def wait_port(port: int, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")
        time.sleep(0.05)


class SmtpSink:
    """``with SmtpSink(tmp) as sink:`` Postfix's smtp-sink on ``sink.port``; ``sink.count()``
    is how many messages it accepted (from its own counters)."""

    def __init__(self, folder: Path) -> None:
        self.root = debian_tree("postfix")
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.out = folder / "smtp-sink.out"

    def __enter__(self) -> SmtpSink:
        self.folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "LD_LIBRARY_PATH": str(self.root / "usr/lib/postfix")}
        # -c: count sessions and messages on stdout; backlog 1000 for bursts of connects.
        with open(self.out, "wb") as fh:
            self.proc = subprocess.Popen(
                [str(self.root / "usr/sbin/smtp-sink"), "-u", "nobody", "-c",
                 f"127.0.0.1:{self.port}", "1000"],
                stdout=fh, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        wait_port(self.port)
        return self

    def count(self) -> int:
        found = re.findall(rb"mesg=(\d+)", self.out.read_bytes()[-200:])
        return int(found[-1]) if found else 0

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


NGINX_CONF = """
daemon off;
master_process on;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    log_format hook '$msec $http_webhook_id';
    access_log {dir}/access.log hook buffer=256k flush=100ms;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ {location} }}
    }}
}}
"""


class HttpSink:
    """``with HttpSink(tmp) as rx:`` nginx answering 200 to everything on ``rx.port``;
    ``rx.arrivals()`` lists ``(epoch seconds, webhook-id)`` per request received."""

    def __init__(self, folder: Path, workers: int = 1, serve: Path | None = None) -> None:
        """``serve``: a folder to serve as static files (ETag, Last-Modified, 304s), else
        answer 200 "ok" to everything."""
        self.root = debian_tree("nginx")
        self.serve = serve
        self.dir = folder
        self.port = free_port()
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> HttpSink:
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "nginx.conf"
        location = f"root {self.serve};" if self.serve else 'return 200 "ok";'
        conf.write_text(
            NGINX_CONF.format(dir=self.dir, port=self.port, workers=self.workers, location=location)
        )
        self.proc = subprocess.Popen(
            [str(self.root / "usr/sbin/nginx"), "-p", str(self.dir), "-c", str(conf)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_port(self.port)
        return self

    def arrivals(self) -> list[tuple[float, str]]:
        log = self.dir / "access.log"
        if not log.exists():
            return []
        out = []
        for line in log.read_text().splitlines():
            stamp, _, hook = line.partition(" ")
            with contextlib.suppress(ValueError):
                out.append((float(stamp), hook))
        return out

    def count(self) -> int:
        log = self.dir / "access.log"
        return sum(1 for _ in open(log, "rb")) if log.exists() else 0

    def settle(self) -> None:
        """Wait for nginx's buffered access log to reach the disk."""
        time.sleep(0.3)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[RedisServer]:
    """A redis-server of the bench's own (AOF everysec, as the tests run it)."""
    server = RedisServer(folder).start()
    try:
        yield server
    finally:
        server.stop()


# -- worker processes ------------------------------------------------------------------


def _work(settings: Any, queues: list[str], go: Any, results: Any, stock: bool = False) -> None:
    """Child: wait for ``go``, drain ``queues`` with a burst worker, report. ``stock``:
    RQ's own SimpleWorker (whose stop can wait out its 60 s pubsub poll) instead of
    the project's ``BurstWorker``, to reproduce that stall."""
    import logging

    from rq import SimpleWorker
    from rq.serializers import JSONSerializer

    from sorawatch.events import queue
    from sorawatch.store import connect
    from sorawatch.workers import email, runtime, webhook  # noqa: F401  (imported before the clock)
    from sorawatch.workers.worker import BurstWorker

    logging.basicConfig(level=logging.WARNING, format="    [worker %(process)d] %(message)s")
    logging.getLogger("rq").setLevel(logging.WARNING)
    redis = connect(settings)
    runtime.configure(settings, redis)
    samples: list[int] = []
    base = SimpleWorker if stock else BurstWorker

    class Measured(base):  # type: ignore[valid-type,misc]
        def perform_job(self, job: Any, queue: Any, execution: Any = None) -> bool:
            ok = bool(super().perform_job(job, queue, execution))
            samples.append(rss_kb())
            return ok

    qs = [queue(n, redis) for n in queues]
    results.put(("ready", os.getpid()))
    go.wait()
    started = time.perf_counter()
    worker = Measured(qs, connection=redis, serializer=JSONSerializer)
    worker.work(burst=True, logging_level="WARNING")
    results.put(
        ("done", os.getpid(), time.time(), time.perf_counter() - started, len(samples),
         samples[0] if samples else 0, rss_kb(field="VmHWM"))
    )  # fmt: skip


class WorkerPool:
    """W spawned worker processes draining ``queues``; ``run()`` returns wall seconds from
    the go signal until the last worker found its queues empty, and per-worker stats."""

    def __init__(
        self, settings: Any, queues: Sequence[str], processes: int, stock: bool = False
    ) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.go = self.ctx.Event()
        self.results = self.ctx.Queue()
        self.procs = [
            self.ctx.Process(
                target=_work, args=(settings, list(queues), self.go, self.results, stock)
            )
            for _ in range(processes)
        ]

    def run(self, timeout: float = 3600.0) -> tuple[float, list[dict[str, Any]]]:
        """Start, wait for every worker to finish; raises ``TimeoutError`` (after
        killing the workers) when that takes longer than ``timeout`` seconds."""
        import queue as stdqueue

        for p in self.procs:
            p.start()
        for _ in self.procs:
            msg = self.results.get(timeout=120)
            assert msg[0] == "ready", msg
        started = time.time()
        self.go.set()
        stats = []
        for _ in self.procs:
            left = max(started + timeout - time.time(), 0.1)
            try:
                got = self.results.get(timeout=left)
            except stdqueue.Empty:
                for p in self.procs:
                    p.kill()
                    p.join(10)
                raise TimeoutError(f"workers still busy after {timeout:.0f} s") from None
            _, pid, ended, _seconds, jobs, first_rss, peak = got
            stats.append({"pid": pid, "ended": ended, "jobs": jobs,
                          "first_rss_kb": first_rss, "peak_kb": peak})  # fmt: skip
        for p in self.procs:
            p.join(30)
        return max(s["ended"] for s in stats) - started, stats


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"
