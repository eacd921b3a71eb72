"""The classifier: relevance, topics and facts in Arabic and English, the lexicon, the CLI."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from sorawatch.cli.classify import classify_command
from sorawatch.errors import LexiconError, SettingsError
from sorawatch.vocabulary import TOPICS
from sorawatch.watcher.classify import Classification, Classifier, default_classifier, load_lexicon
from sorawatch.watcher.lexicon import DEFAULT_PATH

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "dev.jsonl"


def classify(title: str, summary: str = "", lang: str | None = None) -> dict[str, Any]:
    return default_classifier().classify(title, summary, lang).to_dict()


def status_of(title: str, summary: str = "") -> str | None:
    return classify(title, summary)["facts"].get("status")


# ------------------------------------------------------------------ the corpus --


@pytest.fixture(scope="module")
def corpus() -> list[dict[str, Any]]:
    if not CORPUS.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{CORPUS} is missing: CI must run with ../shared beside the clone")
        pytest.skip(f"SKIPPED LOUDLY: no labelled corpus at {CORPUS} (../shared beside the repo)")
    with CORPUS.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="module")
def verdicts(corpus: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(row, classify(row["title"], row["summary"], row["lang"])) for row in corpus]


def test_corpus_relevance_precision_and_recall(verdicts: list[tuple[dict, dict]]) -> None:
    scored = [
        (row["relevant"], got["relevant"]) for row, got in verdicts if row["relevant"] is not None
    ]
    tp = sum(gold and said for gold, said in scored)
    fp = sum(said and not gold for gold, said in scored)
    fn = sum(gold and not said for gold, said in scored)
    assert tp / (tp + fp) >= 0.95
    assert tp / (tp + fn) >= 0.90


def test_corpus_topic_f1_per_language(verdicts: list[tuple[dict, dict]]) -> None:
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for row, got in verdicts:
        if row["relevant"] is None:
            continue
        want, said = set(row["topics"]), set(got["topics"])
        for topic in TOPICS:
            c = counts[(row["lang"], topic)]
            c[0] += topic in want and topic in said
            c[1] += topic in said and topic not in want
            c[2] += topic in want and topic not in said
    checked = 0
    for (lang, topic), (tp, fp, fn) in counts.items():
        if tp + fn == 0:
            assert fp == 0, f"{lang} {topic}: {fp} false positives and no item has the topic"
            continue
        f1 = 2 * tp / (2 * tp + fp + fn)
        assert f1 >= 0.85, f"{lang} {topic}: F1 {f1:.3f} (tp {tp}, fp {fp}, fn {fn})"
        checked += 1
    assert checked >= 5


def test_corpus_status_facts(verdicts: list[tuple[dict, dict]]) -> None:
    stated = [(row, got) for row, got in verdicts if row.get("status_ok")]
    right = sum(got["facts"].get("status") in row["status_ok"] for row, got in stated)
    assert right / len(stated) >= 0.85
    wrongly_released = [
        row["id"]
        for row, got in stated
        if got["facts"].get("status") == "released" and "released" not in row["status_ok"]
    ]
    assert wrongly_released == []


def test_corpus_irrelevant_items_have_no_topics_or_facts(verdicts: list[tuple[dict, dict]]) -> None:
    for _row, got in verdicts:
        if not got["relevant"]:
            assert got == {"relevant": False, "topics": [], "facts": {}}


# --------------------------------------------------------- negation and hedging --


@pytest.mark.parametrize(
    ("title", "summary"),
    [
        (
            "OpenAI's Sora has not been released yet",
            "OpenAI says its video model is still being tested.",
        ),
        (
            "Sora still has no release date",
            "OpenAI has not said when the text-to-video model will ship.",
        ),
        (
            "OpenAI may launch Sora this summer",
            "The AI video model could be released to the public soon.",
        ),
        (
            "Sora 2 rumoured to launch next month",
            "A leak suggests OpenAI will release Sora 2 with audio.",
        ),
        (
            "Will OpenAI release Sora this year?",
            "Mira Murati said OpenAI's video model will definitely launch this year.",
        ),
        (
            "OpenAI's Sora won't launch in Europe yet",
            "The AI video app is not available in the EU.",
        ),
        ("", "OpenAI is expected to roll out Sora to ChatGPT users next week."),
        ("لم يتم حتى الآن إصدار سورا", "لم يتم إصدار نموذج الفيديو سورا من أوبن إيه آي بعد."),
        ("موعد إطلاق سورا", "لا يوجد موعد محدد لإطلاق نموذج سورا من أوبن إيه آي حتى الآن."),
        (
            "هل تطلق أوبن إيه آي سورا قريبًا؟",
            "تشير تقارير إلى أن أوبن إيه آي قد تطلق نموذج الفيديو سورا خلال الأشهر المقبلة.",
        ),
        (
            "أوبن إيه آي: سورا سيتم إطلاقه هذا العام",
            "قالت ميرا موراتي إن سورا سيتم إطلاقه بالتأكيد هذا العام.",
        ),
        ("", "من المتوقع أن تطلق أوبن إيه آي تطبيق سورا على أندرويد قريبًا."),
        ("", "على الرغم من أن سورا لم يتم إصداره بعد، تتعاون أوبن إيه آي مع هوليوود."),
    ],
)
def test_negated_or_hedged_release_is_never_released(title: str, summary: str) -> None:
    got = classify(title, summary)
    assert got["relevant"]
    assert got["facts"].get("status") != "released"


@pytest.mark.parametrize(
    ("title", "summary", "status"),
    [
        (
            "OpenAI delays Sora launch",
            "OpenAI has postponed the release of its video model Sora.",
            "delayed",
        ),
        ("تأجيل إطلاق سورا", "قررت أوبن إيه آي تأجيل طرح أداة سورا بسبب مخاوف أمنية.", "delayed"),
        (
            "Sora has not been released yet",
            "OpenAI's video model Sora is yet to launch.",
            "delayed",
        ),
        ("", "لم يتم إصدار نموذج Sora video AI الخاص بـ OpenAI بعد.", "delayed"),
        # a rumour claims nothing
        ("OpenAI may launch Sora soon", "OpenAI's AI video tool could arrive this year.", None),
        (
            "ستطلق أوبن إيه آي سورا قريبًا",
            "ستطلق أوبن إيه آي نموذج الفيديو سورا قريبًا.",
            "announced",
        ),
    ],
)
def test_delay_and_promise_statuses(title: str, summary: str, status: str | None) -> None:
    assert status_of(title, summary) == status


@pytest.mark.parametrize(
    ("title", "summary", "status"),
    [
        (
            "OpenAI launches Sora Turbo",
            "OpenAI has officially released Sora Turbo to ChatGPT Plus users.",
            "released",
        ),
        (
            "Sora is now available to everyone",
            "OpenAI's video model Sora is now generally available.",
            "released",
        ),
        (
            "أوبن إيه آي تطلق سورا رسميًا",
            "أصبح نموذج سورا من أوبن إيه آي متاحًا الآن للجميع.",
            "released",
        ),
        (
            "OpenAI brings Sora to the EU and UK",
            "OpenAI's Sora launched in the European Union and the UK.",
            "expanded",
        ),
        (
            "سورا يصل إلى أوروبا",
            "أطلقت أوبن إيه آي مولد الفيديو سورا في الاتحاد الأوروبي وبريطانيا.",
            "expanded",
        ),
        (
            "OpenAI pauses Sora early-access program",
            "OpenAI paused early access to Sora for all artists while it looks into a leak.",
            "paused",
        ),
        (
            "أوبن إيه آي توقف سورا مؤقتًا",
            "أوقفت أوبن إيه آي التسجيل في تطبيق سورا بشكل مؤقت.",
            "paused",
        ),
        (
            "OpenAI shuts down Sora",
            "OpenAI is discontinuing the Sora app and the Sora API.",
            "discontinued",
        ),
        (
            "أوبن إيه آي تغلق تطبيق سورا نهائيًا",
            "قررت أوبن إيه آي إيقاف تطبيق سورا بشكل نهائي.",
            "discontinued",
        ),
        (
            "OpenAI unveils Sora",
            "OpenAI's text-to-video model is available to red teamers only.",
            "research_preview",
        ),
        ("", "لا يزال Sora من OpenAI في مرحلة البحث.", "research_preview"),
        (
            "Sora app goes invite-only",
            "OpenAI's Sora app is available by invitation to a small group of users.",
            "limited_access",
        ),
    ],
)
def test_status_phrasings(title: str, summary: str, status: str) -> None:
    assert status_of(title, summary) == status


def test_expanded_names_where_and_version() -> None:
    facts = classify(
        "OpenAI's Sora 2 app arrives on Android", "Now available in the US, Canada and Japan."
    )["facts"]
    assert facts["status"] == "expanded"
    assert facts["version"] == "Sora 2"
    assert facts["where"][:2] == ["Android", "US"]
    arabic = classify("سورا 2 متاح الآن في مصر", "أتاحت أوبن إيه آي تطبيق سورا 2 في مصر والسعودية.")
    assert arabic["facts"]["where"] == ["Egypt", "Saudi Arabia"]


@pytest.mark.parametrize(
    ("title", "summary"),
    [
        (
            "OpenAI's Sora app tops App Store days after launch",
            "The Sora app from OpenAI reached No. 1 on Apple's App Store.",
        ),
        (
            "Sora head Bill Peebles says the app is here to stay",
            "Bill Peebles, who leads OpenAI's Sora, says the video app is here to stay.",
        ),
        (
            "Celebrities push back on Sora 2 cameos",
            "Actors' union SAG-AFTRA criticized OpenAI's Sora 2 over likeness rights.",
        ),
        (
            "Sora outage: OpenAI investigating errors",
            "OpenAI's status page shows elevated error rates for Sora and ChatGPT.",
        ),
        (
            "تطبيق سورا يتصدر متجر آبل",
            "تصدر تطبيق سورا من أوبن إيه آي متجر التطبيقات بعد أيام من إطلاقه.",
        ),
        ("توقف سورا عن العمل", "توقف تطبيق سورا من أوبن إيه آي عن العمل لساعات بسبب عطل."),
        (
            "هل يغير سورا صناعة السينما؟",
            "يرى خبراء أن أداة سورا من أوبن إيه آي قد تغير طريقة صناعة الأفلام.",
        ),
    ],
)
def test_news_about_sora_without_a_change_has_no_topic(title: str, summary: str) -> None:
    assert classify(title, summary) == {"relevant": True, "topics": [], "facts": {}}


# ----------------------------------------------------------- Arabic spellings --


@pytest.mark.parametrize(
    "summary",
    [
        "أعلنت أوبن إيه آي عن تحديث وسورا يحصل على ميزات جديدة للفيديو",
        "قدمت أوبن إيه آي ميزات جديدة لسورا في توليد الفيديو",
        "يمكن لمستخدمي ChatGPT الوصول بسورا إلى مقاطع فيديو أطول",
        "أعلنت أوبن إيه آي عن تحديث لـسورا",
        "أعلنت أوبـــن إيـه آي عن تحديث لِسُورَا",
    ],
)
def test_arabic_prefixes_attach_to_the_name(summary: str) -> None:
    assert classify("", summary, "ar")["relevant"]


def test_arabic_indic_and_persian_digits_read_as_numbers() -> None:
    for digits in ("٢٠", "۲۰"):
        got = classify(
            "", f"اشتراك ChatGPT Plus بسعر {digits} دولارًا شهريًا يتيح استخدام سورا من أوبن إيه آي"
        )
        assert got["facts"]["pricing"] == [
            {"plan": "ChatGPT Plus", "amount": 20, "currency": "USD", "period": "month"}
        ]


# ------------------------------------------------------------------ other Soras --


@pytest.mark.parametrize(
    ("title", "summary"),
    [
        (
            "Kingdom Hearts 4 trailer shows Sora in Quadratum",
            "Square Enix released a new trailer in which Sora fights the Heartless.",
        ),
        (
            "سورا من «كينغدوم هارتس» ينضم إلى Smash Bros",
            "كُشف عن سورا بطل سلسلة كينغدوم هارتس كمقاتل جديد في اللعبة.",
        ),
        (
            "Sora Ventures launches $1 billion bitcoin treasury fund",
            "The Asia-focused firm Sora Ventures backs bitcoin treasury companies.",
        ),
        ("Sora Aoi releases a new video", "The Japanese actress Sora Aoi thanked fans in a video."),
        (
            "Voice actress Sora Amamiya announces new album",
            "Sora Amamiya will release her album in spring.",
        ),
        (
            "Things to do in Sora, Italy",
            "The medieval town of Sora in Lazio has a castle and river walks.",
        ),
        (
            "RocketNews24 is now SoraNews24",
            "The Japan news site renamed itself; sora is Japanese for sky.",
        ),
    ],
)
def test_other_soras_are_not_relevant(title: str, summary: str) -> None:
    assert classify(title, summary) == {"relevant": False, "topics": [], "facts": {}}


@pytest.mark.parametrize(
    ("title", "summary"),
    [
        (
            "Google launches Veo 3, a rival to OpenAI's Sora",
            "Veo 3 generates video with sound for Gemini subscribers.",
        ),
        (
            "Runway Gen-4 is here",
            "Runway's new model keeps characters consistent and beats Sora and Kling in tests.",
        ),
        (
            "Lionsgate partners with Runway",
            "Runway will train a custom video model on Lionsgate's library, unlike OpenAI's Sora.",
        ),
        (
            "منافس جديد لسورا: جوجل تطلق Veo 3",
            "أطلقت جوجل نموذج Veo 3 لتوليد الفيديو منافسًا لـ Sora من OpenAI.",
        ),
        (
            "كلينغ 2.0 يتفوق على سورا",
            "أطلقت شركة Kuaishou نموذج كلينغ 2.0 الذي يتفوق على سورا في الاختبارات.",
        ),
    ],
)
def test_competitor_items_mentioning_sora_in_passing(title: str, summary: str) -> None:
    assert not classify(title, summary)["relevant"]


def test_an_item_about_sora_that_names_competitors_is_relevant() -> None:
    got = classify(
        "OpenAI launches Sora 2",
        "Sora 2 competes with Google's Veo 3 and Runway's Gen-4 with synced audio.",
    )
    assert got["relevant"]
    assert got["facts"]["status"] == "released"


# --------------------------------------------------------------------- prices --


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        (
            "OpenAI's Sora is included in ChatGPT Plus at $20/month.",
            ("ChatGPT Plus", 20, "USD", "month"),
        ),
        (
            "The ChatGPT Pro plan with unlimited Sora costs US$200/month.",
            ("ChatGPT Pro", 200, "USD", "month"),
        ),
        (
            "Sora comes with ChatGPT Plus for 20 dollars a month, OpenAI said.",
            ("ChatGPT Plus", 20, "USD", "month"),
        ),
        (
            "يتوفر سورا من أوبن إيه آي لمشتركي ChatGPT Plus مقابل ٢٠ دولارًا شهريًا.",
            ("ChatGPT Plus", 20, "USD", "month"),
        ),
        (
            "اشتراك ChatGPT Pro مع سورا من أوبن إيه آي بسعر 200 دولار شهريا.",
            ("ChatGPT Pro", 200, "USD", "month"),
        ),
        (
            "The Sora 2 API from OpenAI costs $0.10 per second for sora-2.",
            ("sora-2", 0.1, "USD", "second"),
        ),
        (
            "يكلف نموذج سورا من أوبن إيه آي عبر واجهة البرمجة ٠٫١٠ دولار للثانية.",
            (None, 0.1, "USD", "second"),
        ),
        ("OpenAI lets Sora users buy 10 extra generations for $4.", ("Credits", 4, "USD", None)),
    ],
)
def test_prices_in_both_scripts(summary: str, expected: tuple[Any, ...]) -> None:
    got = classify("", summary)
    assert "pricing" in got["topics"]
    plan, amount, currency, period = expected
    assert {"plan": plan, "amount": amount, "currency": currency, "period": period} in got["facts"][
        "pricing"
    ]
    for price in got["facts"]["pricing"]:
        assert type(price["amount"]) is type(amount)  # int when whole, else float


def test_operating_costs_and_deals_are_not_prices() -> None:
    spend = classify(
        "OpenAI spends $15 million a day on Sora",
        "Running the AI video app costs OpenAI about $1.30 per 10-second video in compute.",
    )
    assert "pricing" not in spend["topics"]
    deal = classify(
        "ديزني تستثمر مليار دولار في OpenAI", "شراكة تمنح أداة سورا حق استخدام 200 شخصية."
    )
    assert "pricing" not in deal["topics"]
    assert "pricing" not in deal["facts"]


# ------------------------------------------------------------------- partners --


@pytest.mark.parametrize(
    ("title", "summary", "partners"),
    [
        (
            "ديزني تستثمر في OpenAI ضمن شراكة لثلاث سنوات",
            "شراكة تمنح أداة سورا حق استخدام شخصيات ديزني.",
            ["Disney"],
        ),
        (
            "ليونزغيت تتعاون مع أوبن إيه آي",
            "أعلنت ليونزغيت عن شراكة مع أوبن إيه آي لاستخدام سورا في أفلامها.",
            ["Lionsgate"],
        ),
        (
            "تعاون بين ماتيل وأوبن إيه آي",
            "أعلنت ماتيل عن تعاون مع أوبن إيه آي لاستخدام سورا 2 في تصميم الألعاب.",
            ["Mattel"],
        ),
        (
            "CAA partners with OpenAI on Sora",
            "Talent agency CAA teamed up with OpenAI to protect actors in Sora 2.",
            ["CAA"],
        ),
        (
            "Toys R Us film made with Sora",
            'Toys "R" Us Studios partnered with creative agency Native Foreign on a brand film made with OpenAI\'s Sora.',
            ['Toys"R"Us', "Native Foreign"],
        ),
    ],
)
def test_partners_come_out_in_latin(title: str, summary: str, partners: list[str]) -> None:
    got = classify(title, summary)
    assert "partnership" in got["topics"]
    assert got["facts"]["partners"] == partners


def test_partnership_needs_the_creative_world_and_not_a_competitor() -> None:
    data = classify("", "OpenAI's Sora was trained on data from partners such as Shutterstock.")
    assert "partnership" not in data["topics"]
    rival = classify(
        "OpenAI launches Sora 2",
        "Separately, Lionsgate signed a deal with Runway for its film library.",
    )
    assert "partnership" not in rival["topics"]


# ------------------------------------------------------------- the interface --


def test_classification_shape() -> None:
    verdict = default_classifier().classify(
        "OpenAI launches Sora in the EU",
        "Sora from OpenAI costs $20/month with ChatGPT Plus.",
        "en",
    )
    assert isinstance(verdict, Classification)
    assert verdict.relevant
    assert verdict.topics == ("status", "pricing")  # always in TOPICS order
    doc = verdict.to_dict()
    assert list(doc) == ["relevant", "topics", "facts"]
    assert json.loads(json.dumps(doc, ensure_ascii=False)) == doc


def test_empty_and_odd_input() -> None:
    for title, summary in (("", ""), ("   ", "\n"), ("؟؟؟", "..."), ("Sora", "")):
        assert classify(title, summary) == {"relevant": False, "topics": [], "facts": {}}
    # Private-use characters are what names become inside the classifier: not from input.
    assert classify("\ue000\ue00f launched", "OpenAI's Sora video model")["topics"] == []


_WORDS = (
    "Sora", "سورا", "وسورا", "Sora 2", "OpenAI", "أوبن إيه آي", "launched", "launches", "not",
    "may", "delayed", "paused", "shut down", "Europe", "Android", "أطلقت", "لم", "تأجيل",
    "متاح", "الآن", "$20/month", "٢٠ دولارًا شهريًا", "US$200", "1,000", "ديزني", "partnered with",
    "Disney", "Kingdom Hearts", "Veo", "rival to", "?", "؟", ".", "،", "\u0640", "\u064b",
    "\ue000", "\n", "'s", "Toys \"R\" Us",
)  # fmt: skip
_NEWSY = st.lists(st.sampled_from(_WORDS), max_size=40).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(
    title=st.one_of(st.text(max_size=80), _NEWSY), summary=st.one_of(st.text(max_size=300), _NEWSY)
)
def test_any_text_gets_a_well_formed_verdict(title: str, summary: str) -> None:
    doc = classify(title, summary)
    assert set(doc) == {"relevant", "topics", "facts"}
    assert list(doc["topics"]) == [t for t in TOPICS if t in doc["topics"]]
    if not doc["relevant"]:
        assert doc == {"relevant": False, "topics": [], "facts": {}}
    assert set(doc["facts"]) <= {"status", "version", "where", "pricing", "partners"}
    for price in doc["facts"].get("pricing", []):
        assert set(price) == {"plan", "amount", "currency", "period"}
        assert isinstance(price["amount"], int | float)
    json.dumps(doc, ensure_ascii=False)


def test_default_classifier_is_cached_and_lexicon_ships_in_the_package() -> None:
    assert default_classifier() is default_classifier()
    assert DEFAULT_PATH.is_file()
    assert DEFAULT_PATH.parent.name == "lexicons"
    assert DEFAULT_PATH.parent.parent.name == "watcher"


def test_another_product_is_another_lexicon(tmp_path: Path) -> None:
    """Watching Veo needs a file, not code."""
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    veo = tmp_path / "veo.toml"
    veo.write_text(
        text.replace('terms = ["sora", "سورا"]', 'terms = ["veo", "فيو"]')
        .replace('id = "sora"', 'id = "veo"')
        .replace('"veo", "veo 2", "veo 3",', '"sora", "sora 2",'),
        encoding="utf-8",
    )
    classifier = Classifier(load_lexicon(veo))
    assert classifier.lexicon.product_id == "veo"
    got = classifier.classify(
        "Google DeepMind launches Veo", "The AI video model is now available."
    )
    assert got.relevant
    assert got.facts["status"] == "released"


# -------------------------------------------------------------- broken lexicons --


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "broken.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("[product]", "[product", "not valid TOML"),
        ('[product]\nid = "sora"', '[produce]\nid = "sora"', "produce"),
        ("min_weak = 2", 'min_weak = "two"', "context.min_weak"),
        ('terms = ["sora", "سورا"]', 'terms = "sora"', "names.terms"),
        ("window = 6", "window = 6\nwindows = 7", "status.windows"),
        (
            '"discontinued", "paused", "research_preview"',
            '"discontinued", "halted", "research_preview"',
            "status.order[1]",
        ),
        ("[status.cues.paused]", "[status.cues.halted]", "status.cues.halted"),
        ('negated = "delayed"', 'negated = "later"', "status.cues.released.negated"),
        ("'\\bcoming soon\\b',", "'\\bcoming (soon\\b',", "status.cues.announced.patterns[2]"),
        ("'\\bcoming soon\\b',", "'{LATER} soon',", "status.cues.announced.patterns[2]"),
        (
            "'\\bcoming soon\\b',",
            "'\\bsora is coming\\b',",
            "status.cues.announced.patterns[2]: spells 'sora'",
        ),
        ("[pricing.currencies.USD]", "[pricing.currencies.usd]", "pricing.currencies.usd"),
        ('"Mattel" = ["mattel", "ماتيل"]', '"Mattel" = "mattel"', "partnership.partners.Mattel"),
        ('"ChatGPT Team" = [', '"ChatGPT Team" = ["!!!", ', "pricing.plans.ChatGPT Team[0]"),
    ],
)
def test_broken_lexicon_names_the_file_and_the_key(
    tmp_path: Path, old: str, new: str, key: str
) -> None:
    path = _broken(tmp_path, old, new)
    with pytest.raises(LexiconError) as info:
        load_lexicon(path)
    message = str(info.value)
    assert str(path) in message
    assert key in message
    assert isinstance(info.value, SettingsError)


def test_missing_sections_and_files(tmp_path: Path) -> None:
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    start = text.index("[pricing]")
    end = text.index("# -------------------------------------------------------------- partnership")
    path = tmp_path / "nopricing.toml"
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    with pytest.raises(LexiconError, match=r"nopricing\.toml: pricing: missing table"):
        load_lexicon(path)
    with pytest.raises(LexiconError, match="file not found"):
        load_lexicon(tmp_path / "absent.toml")


# --------------------------------------------------------------------- the CLI --


def test_cli_answers_each_line_in_order() -> None:
    lines = [
        json.dumps({"title": "OpenAI launches Sora 2", "summary": "", "lang": "en"}),
        "",
        "this is not json",
        json.dumps(
            {
                "title": "ديزني تتعاون مع أوبن إيه آي",
                "summary": "شراكة مع ديزني لاستخدام سورا",
                "lang": "ar",
            }
        ),
        json.dumps(["a", "list"]),
        json.dumps({"title": 42}),
        json.dumps({"title": "Sora Ventures raises a bitcoin fund", "summary": None, "lang": None}),
        json.dumps({"title": "x", "lang": "fr"}),
    ]
    result = CliRunner().invoke(classify_command, input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.output.splitlines()]
    assert len(out) == 7  # the blank line is skipped
    assert out[0]["facts"] == {"status": "released", "version": "Sora 2"}
    assert out[1] == {"error": "line 3: not JSON (Expecting value at column 1)"}
    assert out[2]["topics"] == ["partnership"]
    assert out[2]["facts"]["partners"] == ["Disney"]
    assert out[3]["error"].startswith("line 5: expected a JSON object")
    assert out[4]["error"].startswith('line 6: "title" must be a string')
    assert out[5] == {"relevant": False, "topics": [], "facts": {}}
    assert out[6]["error"].startswith('line 8: "lang"')
    assert "ديزني" in result.output or "Disney" in result.output  # UTF-8 kept as is


def test_cli_with_a_broken_lexicon_fails_with_its_key(tmp_path: Path) -> None:
    path = _broken(tmp_path, "min_weak = 2", "min_weak = -1")
    result = CliRunner().invoke(classify_command, ["--lexicon", str(path)], input="{}\n")
    assert result.exit_code != 0
    assert "context.min_weak" in result.output


def test_cli_answers_undecodable_bytes_and_keeps_going() -> None:
    good = json.dumps({"title": "OpenAI launches Sora 2", "lang": "en"}).encode()
    result = CliRunner().invoke(classify_command, input=b"\xff\xfe{\n" + good + b"\n")
    assert result.exit_code == 0, result.output
    first, second = (json.loads(line) for line in result.output.splitlines())
    assert first["error"].startswith("line 1: not JSON")
    assert second["relevant"] is True


def test_a_whole_article_is_read_from_its_beginning() -> None:
    article = "OpenAI launches Sora 2 in Europe. " + "Filler words about video. " * 5000
    got = classify("OpenAI launches Sora 2", article)
    assert got["relevant"]
    assert got["facts"]["status"] in {"released", "expanded"}


def test_cli_with_an_explicit_lexicon(tmp_path: Path) -> None:
    veo = tmp_path / "veo.toml"
    veo.write_text(
        DEFAULT_PATH.read_text(encoding="utf-8").replace(
            'terms = ["sora", "سورا"]', 'terms = ["veo"]'
        ),
        encoding="utf-8",
    )
    line = json.dumps({"title": "Google launches Veo", "summary": "The AI video model is out."})
    result = CliRunner().invoke(classify_command, ["--lexicon", str(veo)], input=line + "\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["relevant"] is True


# ----------------------------------------------------- claims, not background --


@pytest.mark.parametrize(
    ("title", "summary"),
    [
        # the lead looks back; the news is elsewhere
        (
            "OpenAI's Sora creators flock to TikTok",
            "Sora, first shown in February, was released last December.",
        ),
        (
            "OpenAI's Sora gets a storyboard editor",
            "The app, which launched last year in the US, adds a timeline.",
        ),
        # the past is mentioned only below the lead
        (
            "OpenAI hires a new head of video",
            "Bill Peebles leads Sora. The app was released in 2024 and reached Europe in 2025.",
        ),
        # a rumour, a question, a how-to, a round-up, an opinion
        (
            "OpenAI may release Sora 2 next week, sources say",
            "People familiar said Sora 2 could launch soon.",
        ),
        (
            "Is OpenAI's Sora finally available in Europe?",
            "Sora is available in the EU and the UK now.",
        ),
        (
            "How to use Sora: a beginner's guide",
            "Sora is available to ChatGPT Plus users at $20 a month.",
        ),
        (
            "This week in AI video: Sora, Veo and Kling",
            "OpenAI released Sora 2 on Android; Google updated Veo.",
        ),
        (
            "Opinion: Sora's launch was a mistake",
            "OpenAI released Sora to everyone; it should not have.",
        ),
        (
            "كيف تستخدم سورا من OpenAI في أوروبا",
            "أصبح سورا متاحًا في الاتحاد الأوروبي باشتراك 20 دولارًا شهريًا.",
        ),
        ("حصاد الأسبوع: سورا على أندرويد", "أطلقت OpenAI تطبيق سورا على أندرويد هذا الأسبوع."),
    ],
)
def test_background_tutorials_roundups_and_rumours_claim_no_status(
    title: str, summary: str
) -> None:
    got = classify(title, summary)
    assert got["relevant"]
    assert "status" not in got["facts"]
    assert "pricing" not in got["facts"]


def test_a_deal_the_headline_does_not_tie_to_the_product_is_no_partnership_claim() -> None:
    got = classify(
        "Mattel and OpenAI strike a deal to bring AI to Barbie",
        "The toy maker will use ChatGPT to design toys. OpenAI also makes the Sora video app.",
    )
    assert "partners" not in got["facts"]
    sora = classify(
        "Mattel turns toy sketches into videos with Sora 2",
        "Mattel is working with OpenAI to use Sora 2 in its design studio.",
    )
    assert sora["facts"]["partners"] == ["Mattel"]


def test_the_end_of_a_partnership_is_a_claim_in_both_languages() -> None:
    got = classify("Disney pulls out of its Sora deal with OpenAI", "Disney ended the agreement.")
    assert got["facts"]["partners_ended"] == ["Disney"]
    assert "partners" not in got["facts"]
    ar = classify("ديزني تنهي شراكتها مع OpenAI بشأن سورا", "أعلنت ديزني إنهاء الاتفاق.")
    assert ar["facts"]["partners_ended"] == ["Disney"]


def test_prices_are_claims_in_the_lead_or_with_a_launch_and_background_otherwise() -> None:
    launch = classify(
        "OpenAI releases Sora to ChatGPT subscribers",
        "Sora is now available. Plus costs $20 a month and Pro $200 a month.",
    )
    assert {p["amount"] for p in launch["facts"]["pricing"]} == {20, 200}
    aside = classify(
        "Sora adds a remix button",
        "The app gets a remix tool. It comes with ChatGPT Plus, which costs $20 a month.",
    )
    assert "pricing" not in aside["facts"]
    assert "pricing" in aside["topics"]  # still about pricing, as background


def test_a_pause_of_sign_ups_is_capacity_not_a_pause_of_the_product() -> None:
    got = classify(
        "OpenAI pauses Sora sign-ups",
        "OpenAI temporarily disabled Sora video generation for new users.",
    )
    assert got["facts"].get("status") != "paused"


def test_versions_fold_into_their_line() -> None:
    assert classify("OpenAI releases Sora Turbo", "")["facts"]["version"] == "Sora"
    assert classify("OpenAI switches off the original Sora", "Users move to Sora 2.")["facts"] == {
        "status": "discontinued",
        "version": "Sora",
    }
