"""What a mailbox shows: subjects without a stray space, headers folded at 78 and the
same once unfolded, and mixed-direction text laid out right by a bidi renderer
(python-bidi, the Unicode Bidirectional Algorithm) as a left-to-right client would."""

from __future__ import annotations

from email.message import EmailMessage

from bidi import get_display
from redis import Redis

from sorawatch.events import EventLog
from sorawatch.settings import Settings
from sorawatch.testing.alerts import raise_alert
from sorawatch.testing.smtp import Received, SmtpServer
from sorawatch.workers import email as email_jobs
from sorawatch.workers.mail.headers import HARD_LIMIT, LIMIT, unfold
from tests.workers.delivery_helpers import keys_of, setup_runtime, subscribe, with_smtp

# A feed title with what made the email package start the subject on a continuation
# line: a quoted word, an ampersand, and a control character between two spaces.
TITLE = 'Sora <script>alert("x")</script> & "friends" \x01 is out'
ISOLATES = str.maketrans("", "", "\u2066\u2067\u2068\u2069\u200e\u200f")


def shown(text: str, base: str = "L") -> str:
    """``text`` in visual order, left to right, as a client with base direction
    ``base`` shows it (invisible direction marks dropped)."""
    return str(get_display(text, base_dir=base)).translate(ISOLATES)


def deliver(
    smtp: SmtpServer, redis: Redis, settings: Settings, lang: str, **alert: object
) -> Received:
    settings = with_smtp(settings, smtp.port)
    setup_runtime(settings, redis)
    log = EventLog(redis, keys_of(settings))
    subscribe(log, f"{lang}@example.test", lang, kinds=["news", "change"])
    raise_alert(log, **alert)
    email_jobs.deliver_email("al_test1", [f"{lang}@example.test"], 0)
    [received] = smtp.messages
    return received


def header_lines(raw: bytes) -> list[str]:
    return raw.split(b"\r\n\r\n", 1)[0].decode("ascii").split("\r\n")


def test_english_news_subject_has_no_stray_space(
    smtp: SmtpServer, redis: Redis, settings: Settings
) -> None:
    source = {"url": "https://x.test/a", "title": TITLE, "publisher": "X", "lang": "en",
              "published": None}  # fmt: skip
    received = deliver(smtp, redis, settings, "en", kind="news", topic="status", before=None,
                       after=None, title=TITLE, sources=[source])  # fmt: skip
    subject = str(received.message["Subject"])
    assert subject == 'Sora news (Status): Sora <script>alert("x")</script> & "friends" is out'
    # On the wire the value starts on the Subject line itself.
    [first] = [line for line in header_lines(received.raw) if line.startswith("Subject:")]
    assert first.startswith("Subject: Sora news (Status):")


def test_long_headers_are_folded_and_unfold_to_the_same_value(
    smtp: SmtpServer, redis: Redis, settings: Settings
) -> None:
    received = deliver(smtp, redis, settings, "en")
    lines = header_lines(received.raw)
    for line in lines:
        # At most 78, unless its value is one word with no whitespace to fold at (the
        # unsubscribe URL, which is never broken).
        value = line.split(": ", 1)[1] if not line[0].isspace() else line.strip()
        assert len(line) <= LIMIT or " " not in value, line
        assert len(line) <= HARD_LIMIT
    assert any(line.startswith(" boundary=") for line in lines), "Content-Type not folded"
    message = received.message
    link = str(message["List-Unsubscribe"])
    assert link.startswith("<https://watch.example.test/unsubscribe/")
    assert unfold(received.raw, "List-Unsubscribe") == link
    boundary = message.get_boundary()
    assert boundary
    assert unfold(received.raw, "Content-Type") == (f'multipart/alternative; boundary="{boundary}"')
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def test_arabic_subject_keeps_sora_2_at_its_end_in_a_left_to_right_client(
    smtp: SmtpServer, redis: Redis, settings: Settings
) -> None:
    received = deliver(smtp, redis, settings, "ar", topic="status",
                       before={"value": "research_preview", "version": None},
                       after={"value": "released", "version": "Sora 2"})  # fmt: skip
    subject = str(received.message["Subject"])
    assert "\u2068" in subject
    # Arabic reads right to left: "(Sora 2)" ends the line, so it is shown leftmost,
    # before (to the left of) every Arabic word, in a left-to-right client and in one
    # that takes the direction from the text.
    for base in ("L", None):
        visual = shown(subject, base) if base else str(get_display(subject)).translate(ISOLATES)
        assert visual.index("Sora 2") < visual.index("اروس"), visual
    # Whitespace between encoded-words is not text: the Arabic words stay apart.
    assert "معاينة بحثية ← متاح للجميع" in subject


def test_arabic_mail_keeps_english_sentences_and_prices_whole(
    smtp: SmtpServer, redis: Redis, settings: Settings
) -> None:
    english = {"url": "https://news.example.test/a", "title": "Sora 2 opens to all",
               "publisher": "Example Tech News", "lang": "en", "published": None}  # fmt: skip
    received = deliver(smtp, redis, settings, "ar", kind="news", topic="status", before=None,
                       after=None, title="Sora 2 opens to all", title_lang="en",
                       summary="Sora 2 is now open to everyone, OpenAI said.",
                       sources=[english])  # fmt: skip
    text = _text(received.message)
    summary = next(line for line in text.splitlines() if "المصدر" in line)
    visual = shown(summary, "R")
    # The English sentence keeps its full stop after "said", and the Arabic sentence's
    # full stop ends it on the left.
    assert "OpenAI said." in visual
    assert visual.startswith(".Example Tech News :ردصملا"), visual
    assert visual.endswith("Sora 2 is now open to everyone, OpenAI said."), visual
    # In a left-to-right client too (the line carries its own direction).
    assert shown(summary, "L").endswith("Sora 2 is now open to everyone, OpenAI said."), visual


def test_a_both_subject_keeps_each_language_whole(
    smtp: SmtpServer, redis: Redis, settings: Settings
) -> None:
    received = deliver(smtp, redis, settings, "both")  # ChatGPT Plus at $20/month
    visual = shown(str(received.message["Subject"]), "L")
    arabic, english = visual.split(" | ")
    assert english == "Sora pricing: ChatGPT Plus $20/month"
    assert arabic.endswith(":اروس راعسأ"), arabic  # the Arabic starts at the right
    assert "ChatGPT Plus" in arabic


def test_a_price_inside_arabic_stays_a_price(
    smtp: SmtpServer, redis: Redis, settings: Settings
) -> None:
    received = deliver(smtp, redis, settings, "ar")  # ChatGPT Plus at $20/month
    text = _text(received.message)
    headline = text.splitlines()[0]
    visual = shown(headline, "R")
    assert "ChatGPT Plus" in visual
    assert "20" in visual
    # Arabic writes the amount first: read right to left, "20 US$" (so on screen the
    # currency is left of the amount), and the plan's name is not split by it.
    assert visual.index("$US") < visual.index("20") < visual.index("ChatGPT Plus"), visual
    assert visual.index("ChatGPT Plus") < visual.index("اروس"), visual
    # An English title quoting "$20" in the Arabic mail's sources keeps "$20".
    title = next(line for line in text.splitlines() if "ChatGPT Plus users" in line)
    visual = shown(title, "R")
    assert "Sora is now available to ChatGPT Plus users at $20 a month" in visual, visual
    assert "20$" not in visual
