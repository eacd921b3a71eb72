"""One webhook endpoint cannot exhaust the worker: a huge response body is not read,
and ``webhooks.timeout`` bounds the whole request, not each read.

The endpoints are a real TCP server on 127.0.0.1 that answers by hand: a 300 MB body,
or a response dripped one byte a second. Each records how much it wrote before the
client hung up, which is what the fix changes (no timing is asserted).

The 300 MB body is also answered to a real ``sorawatch work`` process, whose peak RSS
(from wait4, so it covers the RQ worker and the work horse it forks) is compared with
that of the same process given a two-byte answer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from sorawatch.commands import endpoints
from sorawatch.events import EventLog, queue
from sorawatch.keys import Keys
from sorawatch.projections import ledger
from sorawatch.settings import Settings
from sorawatch.testing.alerts import raise_alert
from sorawatch.workers import webhook as webhook_jobs
from tests.faults.procs import SLACK, wait_for, write_config
from tests.reliability import Figures
from tests.workers.delivery_helpers import keys_of, setup_runtime

HUGE = 300 * 1024 * 1024
DRIP = 40  # bytes dripped, one a second, unless the client hangs up first


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(65536)
            if not chunk:
                return
            head += chunk
        headers, _, body = head.partition(b"\r\n\r\n")
        length = 0
        for line in headers.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            body += sock.recv(65536)
        path = headers.split(b" ")[1].decode()
        written = 0
        try:
            if path == "/huge":
                sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % HUGE)
                block = b"x" * (1024 * 1024)
                while written < HUGE:
                    sock.sendall(block)
                    written += len(block)
            elif path == "/small":  # the baseline: a two-byte answer
                answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                sock.sendall(answer)
                written = len(answer)
            else:  # "/drip": a complete 200, one byte a second
                answer = b"HTTP/1.1 200 OK\r\ncontent-length: 20\r\n\r\n" + b"y" * 20
                for byte in answer[:DRIP]:
                    sock.sendall(bytes([byte]))
                    written += 1
                    time.sleep(1.0)
        except OSError:
            pass  # the client hung up: what we want to see
        finally:
            self.server.written[path] = written
            self.server.done.set()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.written: dict[str, int] = {}
        self.done = threading.Event()


@pytest.fixture
def endpoint() -> Iterator[_Server]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _deliver(
    redis: Redis, settings: Settings, endpoint: _Server, path: str, timeout: float
) -> dict[str, object]:
    settings = dataclasses.replace(
        settings,
        webhooks=dataclasses.replace(settings.webhooks, timeout=timeout, retry_schedule=[0]),
    )
    setup_runtime(settings, redis)
    log = EventLog(redis, keys_of(settings))
    port = endpoint.server_address[1]
    hook, _ = endpoints.register(log, f"http://127.0.0.1:{port}{path}", allow_private=True)
    raise_alert(log)
    webhook_jobs.deliver_webhooks("al_test1", [hook.id], 0)
    assert endpoint.done.wait(60), "the endpoint never saw the client hang up"
    record = ledger.record(redis, log.keys, "al_test1", "webhook", hook.id)
    assert record is not None
    return record


def test_a_300_mb_response_is_not_read(redis: Redis, settings: Settings, endpoint: _Server) -> None:
    record = _deliver(redis, settings, endpoint, "/huge", timeout=60.0)
    assert record["status"] == "sent"  # the 200 is what counts; the body is not ours
    # The client stopped reading after 64 KiB; what the server got rid of is what
    # fits in the socket buffers, nowhere near 300 MB.
    assert endpoint.written["/huge"] < 64 * 1024 * 1024


# The command runs under this small launcher, which forks it, passes SIGTERM on, and
# prints its peak RSS from wait4. Linux counts a process's peak from before its exec
# too: started straight from this test process, the command's figure would include
# whatever the test process held at that moment (hundreds of MiB late in a full run).
_LAUNCHER = """
import os, signal, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGTERM))
_, status, usage = os.wait4(pid, 0)
print(f"PEAK-RSS-KIB {usage.ru_maxrss}", flush=True)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _work_until_delivered(
    redis_url: str, redis: Redis, tmp_path: Path, endpoint: _Server, path: str
) -> tuple[int, dict[str, object]]:
    """Deliver one alert to ``path`` with a real ``sorawatch work --queues webhook``,
    stop it with SIGTERM once the endpoint saw the client hang up, and return its peak
    RSS in KiB and the delivery record. The peak is from wait4 on the command (in a
    launcher, see ``_LAUNCHER``): the
    largest of it and every process it and its children reaped (the RQ worker, the work
    horse that ran the job), so it counts only once everything stopped cleanly."""
    prefix = f"rss{path.strip('/')}"
    keys = Keys(prefix)
    log = EventLog(redis, keys)
    port = endpoint.server_address[1]
    hook, _ = endpoints.register(log, f"http://127.0.0.1:{port}{path}", allow_private=True)
    raise_alert(log)
    config = write_config(
        tmp_path / f"{prefix}.toml",
        redis_url,
        prefix,
        tmp_path / "data",
        "[webhooks]\nallow_private = true\ntimeout = 60\nretry_schedule = [0]\n\n"
        '[log]\nlevel = "WARNING"\n',
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SORAWATCH_")}
    env["SORAWATCH_REDIS_URL"] = redis_url
    with open(tmp_path / f"{prefix}.log", "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _LAUNCHER,
                "-m",
                "sorawatch.cli",
                "-c",
                str(config),
                "work",
                "--queues",
                "webhook",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        # Against a hang, not a timing assertion: the whole group goes at the bound.
        guard = threading.Timer(120 * SLACK, _kill_group, (proc.pid,))
        guard.start()
        try:
            queue("webhook", redis, keys).enqueue_call(
                "sorawatch.workers.webhook.deliver_webhooks", args=("al_test1", [hook.id], 0)
            )

            def delivered() -> bool:
                record = ledger.record(redis, keys, "al_test1", "webhook", hook.id)
                return record is not None and path in endpoint.written

            try:
                wait_for(delivered, 60, f"the delivery to {path}", poll=0.2)
            finally:
                proc.send_signal(signal.SIGTERM)  # a warm stop: every child is reaped
                _, status, _usage = os.wait4(proc.pid, 0)
        finally:
            guard.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    output = (tmp_path / f"{prefix}.log").read_text("utf-8", errors="replace")
    assert proc.returncode == 0, output
    assert "Traceback" not in output, output
    record = ledger.record(redis, keys, "al_test1", "webhook", hook.id)
    assert record is not None
    peak = re.search(r"PEAK-RSS-KIB (\d+)", output)
    assert peak is not None, output
    return int(peak.group(1)), record


@pytest.mark.fault
@pytest.mark.timeout(1800)  # waits on conditions with generous bounds
def test_a_300_mb_response_leaves_the_worker_process_small(
    redis_url: str, redis: Redis, tmp_path: Path, endpoint: _Server, reliability: Figures
) -> None:
    small_peak, small = _work_until_delivered(redis_url, redis, tmp_path, endpoint, "/small")
    huge_peak, huge = _work_until_delivered(redis_url, redis, tmp_path, endpoint, "/huge")
    assert small["status"] == huge["status"] == "sent"
    growth = (huge_peak - small_peak) / 1024
    # Reading the body would take 300 MiB or more; what is read is 64 KiB. Generous
    # bounds, so a busy machine cannot fail it: the point is "not the body's size".
    assert huge_peak / 1024 < 200, f"peak RSS {huge_peak / 1024:.1f} MiB against a 300 MB body"
    assert growth < 64, f"a 300 MB body grew the worker by {growth:.1f} MiB"
    written = endpoint.written["/huge"]
    assert written < 64 * 1024 * 1024, f"the endpoint got {written} bytes out"
    reliability.note(
        f"300 MB webhook response: `work` peak RSS {huge_peak / 1024:.1f} MiB against "
        f"{small_peak / 1024:.1f} MiB for a two-byte answer (+{growth:.1f} MiB); the endpoint "
        f"got {written / 1024 / 1024:.1f} MiB of its 300 MB out before the worker hung up"
    )


def test_the_timeout_bounds_the_whole_request_not_each_read(
    redis: Redis, settings: Settings, endpoint: _Server
) -> None:
    record = _deliver(redis, settings, endpoint, "/drip", timeout=2.0)
    assert record["status"] == "abandoned"  # retry_schedule [0]: no attempt left
    assert str(record["error"]).startswith("timeout")
    # Each byte came within the per-read timeout; only a bound on the whole request
    # ends it long before the 40 dripped bytes are out.
    assert endpoint.written["/drip"] < DRIP // 2


def test_a_wait_over_a_second_is_logged_with_what_it_waited_for(
    redis: Redis, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from sorawatch.testing.http import HttpReceiver

    setup_runtime(settings, redis)
    log = EventLog(redis, keys_of(settings))
    with HttpReceiver() as rx:
        rx.script("/slow", [(200, {}, 1.5)])
        hook, _ = endpoints.register(log, rx.url("/slow?token=secret-part"), allow_private=True)
        raise_alert(log)
        with caplog.at_level(logging.WARNING, logger="sorawatch.waits"):
            webhook_jobs.deliver_webhooks("al_test1", [hook.id], 0)
    lines = [r.getMessage() for r in caplog.records if r.name == "sorawatch.waits"]
    assert any("webhook POST to 127.0.0.1" in line for line in lines), lines
    assert not any("secret-part" in line for line in lines)  # the host only, never the URL
    assert ledger.status(redis, log.keys, "al_test1", "webhook", hook.id) == "sent"
