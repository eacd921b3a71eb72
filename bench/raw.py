"""Raw capacity and sink ceilings: bare clients blasting pre-built messages or
requests from spawned processes, no queue, no rendering, no ledger. The baselines the
fan-out bench measures ours against."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from figures import OutOfTime


async def _raw_smtp(port: int, messages: list[tuple[str, bytes]], concurrency: int) -> int:
    import aiosmtplib

    todo = list(messages)

    async def lane() -> int:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        sent = 0
        while todo:
            rcpt, raw = todo.pop()
            await client.sendmail("alerts@watch.example.test", [rcpt], raw)
            sent += 1
        await client.quit()
        return sent

    return sum(await asyncio.gather(*(lane() for _ in range(concurrency))))


async def _raw_http(urls: list[str], body: bytes, headers: dict[str, str], conc: int) -> int:
    import httpx

    limit = asyncio.Semaphore(conc)
    limits = httpx.Limits(max_connections=conc)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:

        async def one(url: str) -> int:
            async with limit:
                r = await client.post(url, content=body, headers=headers)
                return int(r.status_code == 200)

        return sum(await asyncio.gather(*(one(u) for u in urls)))


async def _ceiling_smtp(port: int, n: int, lanes: int) -> int:
    """A minimal SMTP client over raw sockets, pipelining whole transactions."""
    body = b"Subject: x\r\n\r\nhello\r\n.\r\n"
    txn = b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n" + body

    async def lane(count: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        writer.write(b"EHLO bench\r\n")
        await writer.drain()
        while not (await reader.readline()).startswith(b"250 "):
            pass
        done, window = 0, 50
        while done < count:
            k = min(window, count - done)
            writer.write(txn * k)
            await writer.drain()
            for _ in range(4 * k):  # MAIL, RCPT, DATA (354), end of data
                await reader.readline()
            done += k
        writer.write(b"QUIT\r\n")
        await writer.drain()
        writer.close()
        return done

    return sum(await asyncio.gather(*(lane(n // lanes) for _ in range(lanes))))


async def _ceiling_http(port: int, n: int, lanes: int) -> int:
    """A minimal keep-alive HTTP/1.1 client over raw sockets, pipelining POSTs."""
    req = (
        f"POST /h/0 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\n\r\n{}"
    ).encode()

    async def lane(count: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        done, window = 0, 50
        while done < count:
            k = min(window, count - done)
            writer.write(req * k)
            await writer.drain()
            for _ in range(k):
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)
            done += k
        writer.close()
        return done

    return sum(await asyncio.gather(*(lane(n // lanes) for _ in range(lanes))))


def _child(kind: str, payload: Any, go: Any, results: Any) -> None:
    results.put("ready")
    go.wait()
    started = time.perf_counter()
    coro = {
        "raw_smtp": _raw_smtp,
        "raw_http": _raw_http,
        "ceiling_smtp": _ceiling_smtp,
        "ceiling_http": _ceiling_http,
    }[kind](*payload)
    done = asyncio.run(coro)
    results.put((done, time.perf_counter() - started))


def in_processes(kind: str, payloads: list[Any], timeout: float = 600.0) -> float:
    """Run ``kind`` in one spawned process per payload, all started together; returns
    items per second over the whole (the slowest process ends the clock). Raises
    ``OutOfTime`` (after killing them) when they take longer than ``timeout`` seconds."""
    import multiprocessing
    import queue as stdqueue

    ctx = multiprocessing.get_context("spawn")
    go, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_child, args=(kind, p, go, results)) for p in payloads]
    for p in procs:
        p.start()
    for _ in procs:
        results.get(timeout=60)
    go.set()
    ends = time.monotonic() + timeout
    try:
        outs = [results.get(timeout=max(ends - time.monotonic(), 0.1)) for _ in procs]
    except stdqueue.Empty:
        for p in procs:
            p.kill()
            p.join(10)
        raise OutOfTime(f"{kind} still running after {timeout:.0f} s") from None
    for p in procs:
        p.join(30)
    return sum(d for d, _ in outs) / max(s for _, s in outs)


def split(items: list[Any], parts: int) -> list[list[Any]]:
    return [items[i::parts] for i in range(parts)]
