"""A real headless Chromium (Debian's, driven by Playwright) against the app served
by uvicorn on 127.0.0.1, with JavaScript off: the Arabic page reads right to left
on a phone-sized screen, and the subscribe form leads, through a real mail, to
the confirmed page. Screenshots go to test-artifacts/."""

from __future__ import annotations

import dataclasses
import itertools
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

from sorawatch.commands import subscriptions
from sorawatch.events import EventLog, queue
from sorawatch.keys import Keys
from sorawatch.projections import subscribers
from sorawatch.settings import Settings, SmtpSettings
from sorawatch.testing.ports import free_port
from sorawatch.testing.smtp import SmtpServer
from sorawatch.web.app import create_app
from sorawatch.workers.worker import BurstWorker
from tests.conftest import REPO
from tests.web.conftest import LiveServer, live_settings
from tests.web.seed import seed

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
    from sorawatch.workers import runtime

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


# -- the order of rendered text -----------------------------------------------------------

# Word boxes of an element's text, from Chromium's layout: one Range per word of each
# text node, [word, left, right, top, bottom] (CSS pixels).
WORD_BOXES = """el => {
  const out = [];
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent;
    const re = /[^\\s\\u2066-\\u2069]+/g;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const b = range.getBoundingClientRect();
      out.push([m[0], b.left, b.right, b.top, b.bottom]);
    }
  }
  return out;
}"""
Box = tuple[str, float, float, float, float]


def words_of(locator: Any) -> list[Box]:
    return [tuple(w) for w in locator.evaluate(WORD_BOXES)]  # type: ignore[misc]


def box(locator: Any) -> tuple[float, float, float, float]:
    b = locator.bounding_box()
    return b["x"], b["x"] + b["width"], b["y"], b["y"] + b["height"]


def same_line(a: Box, b: Box) -> bool:
    return abs(a[3] - b[3]) < 2


def reads_left_to_right(words: list[Box]) -> bool:
    """Each word is right of the one before it on its line, or starts a lower line."""
    return all(
        (same_line(a, b) and b[1] >= a[2] - 1) or b[3] >= a[4] - 1
        for a, b in itertools.pairwise(words)
    )


def test_english_titles_in_the_arabic_page_keep_their_order(
    browser: Any, site: tuple[str, SmtpServer, Settings]
) -> None:
    """The Arabic status page on a phone: English source titles read left to right,
    sit on the correct side of the Arabic around them, and a publisher never lands in
    the middle of a wrapped title. Screenshot: test-artifacts/status-ar-sources.png."""
    url, _, _ = site
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport=PHONE, java_script_enabled=False, device_scale_factor=2)
    page = context.new_page()
    try:
        page.goto(f"{url}/?lang=ar")
        page.screenshot(path=str(ARTIFACTS / "status-ar-sources.png"), full_page=True)

        # A short English title: its words in order, left to right, on one line.
        link = page.locator("#status .sources a", has_text="OpenAI releases Sora 2").first
        words = words_of(link)
        assert [w[0] for w in words] == ["OpenAI", "releases", "Sora", "2"]
        assert all(same_line(words[0], w) for w in words)
        assert reads_left_to_right(words), words
        # Right to left, the publisher comes after the title: to its left.
        publisher = box(link.locator("xpath=../bdi"))
        title = box(link)
        assert publisher[1] <= title[0] + 1 or publisher[2] >= title[3] - 1

        # The quoted original headline follows its Arabic label: to the label's left.
        quoted = page.locator("#timeline q", has_text="OpenAI releases Sora 2").first
        label = [w for w in words_of(quoted.locator("xpath=..")) if w[0] == "نُشر:"]
        assert label, words_of(quoted.locator("xpath=.."))
        q_words = words_of(quoted)
        assert reads_left_to_right(q_words), q_words
        first_line = [w for w in q_words if same_line(w, q_words[0])]
        if same_line(first_line[-1], label[0]):
            assert first_line[-1][2] <= label[0][1] + 1

        # A long English title that wraps on a phone stays one block: its words in
        # order, and its publisher does not share a line with part of it.
        for link in page.locator(".sources a[lang=en]").all():
            words = words_of(link)
            assert reads_left_to_right(words), words
            bdi = link.locator("xpath=following-sibling::bdi")
            if len({round(w[3]) for w in words}) > 1 and bdi.count():
                top = box(bdi.first)[2]
                assert top >= max(w[4] for w in words) - 1, (words, top)

        # "(Sora 2)" ends the Arabic headline: it is left of every Arabic word.
        heading = page.locator("#timeline h3", has_text="Sora 2").first
        boxes = words_of(heading)
        latin = [w for w in boxes if "Sora" in w[0] or w[0].startswith("2")]
        arabic = [w for w in boxes if any("\u0600" <= c <= "\u06ff" for c in w[0])]
        line = [w for w in arabic if same_line(w, latin[0])]
        assert line, boxes
        on_line = [w for w in latin if same_line(w, latin[0])]  # "2" may wrap below
        assert max(w[2] for w in on_line) <= min(w[1] for w in line) + 1, (latin, line)
    finally:
        context.close()


ARABIC_HEADLINE = "أوبن إيه آي تطلق سورا 2 للجميع!"


def test_english_mail_with_an_arabic_headline_reads_right_to_left(
    browser: Any, site: tuple[str, SmtpServer, Settings], redis: Redis
) -> None:
    """The HTML part of an English mail received by aiosmtpd, opened in Chromium: the
    Arabic headline runs right to left with its "!" at its end (its left), and the
    English "(in Arabic)" follows it on the right.
    Screenshot: test-artifacts/mail-en-arabic-headline.png."""
    from sorawatch.testing.alerts import raise_alert
    from sorawatch.workers import email as email_jobs

    _, smtp, live = site
    ARTIFACTS.mkdir(exist_ok=True)
    log = EventLog(redis, Keys(live.redis.prefix))
    subscriptions.request(log, "reader@example.test", "en", None, None, confirmed=True)
    source = {"url": "https://aitnews.com/sora-2/", "title": ARABIC_HEADLINE,
              "publisher": "البوابة العربية للأخبار التقنية", "lang": "ar",
              "published": "2025-09-30T17:00:00Z"}  # fmt: skip
    raise_alert(log, alert_id="al_arabic_1", kind="news", topic="status", before=None,
                after=None, title=ARABIC_HEADLINE, title_lang="ar",
                summary="سورا 2 متاح الآن للجميع.", sources=[source])  # fmt: skip
    # The mail job runs its own event loop: not in this thread, which Playwright owns.
    thread = threading.Thread(
        target=email_jobs.deliver_email, args=("al_arabic_1", ["reader@example.test"], 0)
    )
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    [mail] = smtp.to("reader@example.test")
    html_part = mail.get_body(("html",))
    assert html_part is not None
    html = html_part.get_content()  # type: ignore[attr-defined]

    context = browser.new_context(viewport={"width": 700, "height": 900}, java_script_enabled=False)
    page = context.new_page()
    try:
        page.set_content(html)
        page.screenshot(path=str(ARTIFACTS / "mail-en-arabic-headline.png"), full_page=True)
        assert page.locator("html").evaluate("el => getComputedStyle(el).direction") == "ltr"
        boxes = words_of(page.locator("h1"))
        words = [w[0] for w in boxes]
        assert words[:6] == ["أوبن", "إيه", "آي", "تطلق", "سورا", "2"], words
        first, last = boxes[0], boxes[6]
        assert last[0] == "للجميع!"
        assert all(same_line(first, w) for w in boxes), boxes
        # Right to left: the first Arabic word is rightmost of the Arabic ...
        assert first[1] > last[2], boxes
        # ... and the "!" ends it on the left, not after it on the right.
        bang = page.locator("h1").evaluate(
            "el => { const t = el.firstChild; const i = t.textContent.indexOf('!');"
            " const r = document.createRange(); r.setStart(t, i); r.setEnd(t, i + 1);"
            " const b = r.getBoundingClientRect(); return [b.left, b.right]; }"
        )
        body = page.locator("h1").evaluate(
            "el => { const t = el.firstChild; const i = t.textContent.indexOf('للجميع');"
            " const r = document.createRange(); r.setStart(t, i); r.setEnd(t, i + 6);"
            " const b = r.getBoundingClientRect(); return [b.left, b.right]; }"
        )
        assert bang[1] <= body[0] + 1, (bang, body)
        # The English label follows the Arabic block on the right.
        label = [w for w in boxes if w[0] == "(in"]
        assert label
        assert label[0][1] >= max(w[2] for w in boxes[:7]) - 1, boxes
        # The Arabic source title in the list runs right to left as well.
        source_words = words_of(page.locator("ul a").first)
        assert source_words[0][1] > source_words[-1][2], source_words
    finally:
        context.close()
