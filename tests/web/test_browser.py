"""A real headless Chromium (Debian's, driven by Playwright) against the app served
by uvicorn on 127.0.0.1, with JavaScript off: the Arabic page reads right to left
on a phone-sized screen, and the subscribe form leads, through a real mail, to
the confirmed page. Screenshots go to test-artifacts/."""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty

from sorawatch.events import EventLog, queue
from sorawatch.keys import Keys
from sorawatch.projections import subscribers
from sorawatch.settings import Settings, SmtpSettings
from sorawatch.web.app import create_app
from tests.conftest import REPO
from tests.redis_server import free_port
from tests.smtp_server import SmtpServer
from tests.web.conftest import LiveServer, live_settings
from tests.web.seed import seed
from workers.worker import BurstWorker

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = REPO / "test-artifacts"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the browser test: {reason}")
        pytest.skip(f"SKIPPED LOUDLY: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def site(settings: Settings, redis: Redis) -> Iterator[tuple[str, SmtpServer, Settings]]:
    from workers import runtime

    port = free_port()
    with SmtpServer() as smtp:
        live = dataclasses.replace(
            live_settings(settings, port),
            smtp=SmtpSettings(host="127.0.0.1", port=smtp.port, timeout=5),
        )
        runtime.configure(live, redis)
        seed(EventLog(redis, Keys(live.redis.prefix)))
        try:
            with LiveServer(create_app(live, redis), port) as server:
                yield server.url, smtp, live
        finally:
            runtime.reset()


class ThreadWorker(BurstWorker):
    """A burst worker for a side thread (signal handlers belong to the main thread) that
    stops at once (RQ's own could wait a minute on its command thread)."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        pass


def run_email_jobs(redis: Redis) -> None:
    """Run the email queue in a thread: Playwright's sync API owns this thread's
    event loop, and the mail job runs its own."""
    worker = ThreadWorker([queue("email", redis)], connection=redis, serializer=JSONSerializer)
    thread = threading.Thread(target=worker.work, kwargs={"burst": True})
    thread.start()
    thread.join(60)
    assert not thread.is_alive()


def test_arabic_page_reads_right_to_left_and_subscribing_works(
    browser: Any, site: tuple[str, SmtpServer, Settings], redis: Redis
) -> None:
    url, smtp, live = site
    ARTIFACTS.mkdir(exist_ok=True)
    # No JavaScript: everything must be readable and usable without it.
    context = browser.new_context(
        viewport=PHONE, java_script_enabled=False, locale="ar-EG", device_scale_factor=2
    )
    page = context.new_page()
    try:
        page.goto(f"{url}/")  # no ?lang: the browser's Accept-Language (ar-EG)
        direction = page.locator("html").evaluate("el => getComputedStyle(el).direction")
        assert direction == "rtl"
        assert page.locator("html").get_attribute("lang") == "ar"
        heading = page.locator("#status-h")
        assert heading.inner_text() == "الحالة الآن"
        # Right to left: the heading's text hugs the right edge of the phone screen.
        left, right = heading.evaluate(
            "el => { const r = document.createRange(); r.selectNodeContents(el);"
            " const b = r.getBoundingClientRect(); return [b.left, b.right]; }"
        )
        assert right > PHONE["width"] - 60
        assert left > PHONE["width"] / 2
        # Readable on a phone: nothing wider than the screen.
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"]
        # Feed text is text: the hostile headline did not become an element.
        assert page.locator("script").count() == 0
        assert "<script>" in page.locator("#timeline").inner_text()
        page.screenshot(path=str(ARTIFACTS / "status-ar.png"), full_page=True)

        page.goto(f"{url}/?lang=en")
        assert page.locator("html").evaluate("el => getComputedStyle(el).direction") == "ltr"
        assert page.locator("#status-h").inner_text() == "Status today"
        page.screenshot(path=str(ARTIFACTS / "status-en.png"), full_page=True)

        # Back to Arabic through the switch, then subscribe.
        page.click("a.switch")
        assert page.locator("html").get_attribute("lang") == "ar"
        page.fill("#email", "Browser@Example.com")
        page.check("input[name=lang][value=ar]")
        page.uncheck("input[name=topics][value=pricing]")
        page.click("form.subscribe button[type=submit]")
        assert page.locator("h1").inner_text() == "تفقّد بريدك"
        page.screenshot(path=str(ARTIFACTS / "subscribed-ar.png"), full_page=True)

        run_email_jobs(redis)
        mails = smtp.to("browser@example.com")
        assert len(mails) == 1
        body = mails[0].get_body(("plain",))
        assert body is not None
        link = re.search(re.escape(url) + r"/confirm/[A-Za-z0-9_.\-]+", body.get_content())
        assert link, body.get_content()
        page.goto(link.group(0))
        assert page.locator("h1").inner_text() == "أكّد اشتراكك"  # a GET only shows the button
        page.click("#confirm button[type=submit]")
        assert page.locator("h1").inner_text() == "تم تأكيد اشتراكك"
        assert page.locator("html").evaluate("el => getComputedStyle(el).direction") == "rtl"
        page.screenshot(path=str(ARTIFACTS / "confirmed-ar.png"), full_page=True)
    finally:
        context.close()
    sub = subscribers.get(redis, Keys(live.redis.prefix), "browser@example.com")
    assert sub is not None
    assert (sub.status, sub.lang, sub.topics) == ("confirmed", "ar", ("status", "partnership"))
