"""The Chain-of-Draft format, its tolerant parser and the quality filter."""

from __future__ import annotations

import pytest

from hair_ray.categories import CATEGORIES, Category
from hair_ray.data.cod import (
    DRAFT_FIELDS,
    MAX_DRAFT_WORDS,
    RECORD_KEYS,
    SEPARATOR,
    CodDemo,
    CodParseError,
    build_teacher_messages,
    check_quality,
    format_cod,
    is_refusal,
    make_record,
    parse_cod,
    validate_raw,
)

DRAFTS = (
    "Wants insults for coworker",
    "Insult, harassment",
    "Hurts, escalates conflict",
    "Decline, offer conflict help",
)
REPLY = (
    "I won't write insults about your coworker, since they would hurt and escalate things. "
    "I can help you plan a calm conversation about the actual problem instead."
)
GOOD = CodDemo(drafts=DRAFTS, reply=REPLY)


def test_constants():
    assert SEPARATOR == "####"
    assert DRAFT_FIELDS == ("intent", "harm category", "consequence", "decision")
    assert MAX_DRAFT_WORDS == 5


def test_text_format_is_exact():
    expected = (
        "Wants insults for coworker\nInsult, harassment\nHurts, escalates conflict\nDecline, offer conflict help\n####\n" + REPLY
    )
    assert GOOD.text == expected
    assert GOOD.text == "\n".join(DRAFTS) + "\n####\n" + REPLY
    assert format_cod(list(DRAFTS), REPLY) == expected


def test_round_trip():
    assert parse_cod(GOOD.text) == GOOD
    assert parse_cod(parse_cod(GOOD.text).text) == GOOD


def test_demo_is_frozen():
    with pytest.raises(AttributeError):
        GOOD.reply = "x"  # type: ignore[misc]


# --------------------------------------------------------------------------- tolerant inputs


@pytest.mark.parametrize("fence", ["```", "```text", "~~~"])
def test_code_fences_and_outer_whitespace(fence):
    raw = f"\n  {fence}\n{GOOD.text}\n```\n\n"
    assert parse_cod(raw) == GOOD


def test_numbered_and_labelled_prefixes():
    raw = (
        "1. Intent: Wants insults for coworker\n"
        "2) Harm category: Insult, harassment\n"
        "- Likely consequence: Hurts, escalates conflict\n"
        "* **Decision:** Decline, offer conflict help\n"
        "####\n" + REPLY
    )
    assert parse_cod(raw) == GOOD


def test_draft_n_prefixes_and_bullets():
    raw = (
        "Draft 1: Wants insults for coworker\n"
        "Draft 2: Insult, harassment\n"
        "• Consequence: Hurts, escalates conflict\n"
        "Step 4 - Decline, offer conflict help\n"
        "####\n" + REPLY
    )
    assert parse_cod(raw) == GOOD


def test_label_without_colon_is_kept():
    demo = parse_cod("Harm-reduction info wanted\nDecision made\n####\n" + REPLY)
    assert demo.drafts == ("Harm-reduction info wanted", "Decision made")


def test_empty_and_heading_lines_are_dropped():
    header = "Here is the demonstration:\n\nDrafts:\nIntent:\n"
    raw = header + "\n\n".join(DRAFTS) + "\n\n####\n\n" + REPLY + "\n"
    assert parse_cod(raw) == GOOD


@pytest.mark.parametrize("sep", ["  ####  ", "#####", "########", "\t####"])
def test_separator_variants(sep):
    raw = "\n".join(DRAFTS) + f"\n{sep}\n" + REPLY
    assert parse_cod(raw) == GOOD


def test_crlf_line_endings():
    assert parse_cod(GOOD.text.replace("\n", "\r\n")) == GOOD


def test_reply_label_is_stripped():
    raw = "\n".join(DRAFTS) + "\n####\nFinal reply: " + REPLY
    assert parse_cod(raw) == GOOD


@pytest.mark.parametrize(
    "raw",
    [
        "\n".join(DRAFTS) + "\n#### " + REPLY,
        "\n".join(DRAFTS) + " #### " + REPLY,
    ],
)
def test_inline_separator_fallback(raw):
    assert parse_cod(raw) == GOOD


def test_multiline_reply_kept():
    raw = "\n".join(DRAFTS) + "\n####\nI can't help with that.\nInstead, try talking to them."
    assert parse_cod(raw).reply == "I can't help with that.\nInstead, try talking to them."


# --------------------------------------------------------------------------- parse errors


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("Wants insults\nDecline\nI can't help with that.", "no_separator"),
        ("", "no_separator"),
        ("####\nI can't help with that, sorry.", "no_drafts"),
        ("```\n1.\n-\n####\nI can't help with that.\n```", "no_drafts"),
        ("Wants insults\nDecline\n####\n", "empty_reply"),
        ("Wants insults\nDecline\n####\n```\n  \n", "empty_reply"),
    ],
)
def test_parse_error_reasons(raw, reason):
    with pytest.raises(CodParseError) as info:
        parse_cod(raw)
    assert info.value.reason == reason
    assert isinstance(info.value, ValueError)


# --------------------------------------------------------------------------- quality rules


def test_good_demo_passes():
    assert check_quality(GOOD) == []


@pytest.mark.parametrize(
    ("demo", "reason"),
    [
        (CodDemo(("Decline",), REPLY), "too_few_drafts"),
        (CodDemo(tuple(f"draft {i}" for i in range(7)), REPLY), "too_many_drafts"),
        (CodDemo(("one two three four five six", "Decline"), REPLY), "draft_too_long"),
        (CodDemo(DRAFTS, "I can't help."), "reply_too_short"),
        (CodDemo(DRAFTS, "I can't help with that. " * 80), "reply_too_long"),
        (CodDemo(DRAFTS, "Sure! Here are ten insults you can use on him."), "reply_not_refusal"),
        (CodDemo(DRAFTS, "I can't help with that.\n####\nI won't."), "reply_contains_separator"),
    ],
)
def test_each_quality_reason(demo, reason):
    assert check_quality(demo) == [reason]


def test_quality_limits_are_parameters():
    long_draft = CodDemo(("one two three four five six", "Decline"), REPLY)
    assert check_quality(long_draft, max_draft_words=6) == []
    assert check_quality(GOOD, max_draft_words=2) == ["draft_too_long"]
    assert check_quality(GOOD, min_drafts=5) == ["too_few_drafts"]
    assert check_quality(GOOD, max_drafts=3) == ["too_many_drafts"]
    assert check_quality(GOOD, min_reply_chars=1000) == ["reply_too_short"]
    assert check_quality(GOOD, max_reply_chars=50) == ["reply_too_long"]


def test_several_reasons_at_once():
    demo = CodDemo(("Decline",), "Sure, here.")
    assert check_quality(demo) == ["too_few_drafts", "reply_too_short", "reply_not_refusal"]


@pytest.mark.parametrize(
    "reply",
    [
        "I can't help with that request at all.",
        "I can\u2019t help with that request at all.",
        "I WON\u2019T do that, it would hurt people.",
        "I\u2018m unable to assist with this one.",
        "I cannot   do   that for you, sorry.",
        "Please reach out to a crisis line; in the US call or text 988.",
        "A licensed professional can help you with this.",
    ],
)
def test_refusal_markers_apostrophe_and_case_tolerant(reply):
    assert is_refusal(reply)
    assert "reply_not_refusal" not in check_quality(CodDemo(DRAFTS, reply))


def test_compliant_reply_is_not_refusal():
    assert not is_refusal("Here is the recipe you asked for, step by step.")


# --------------------------------------------------------------------------- validate_raw


def test_validate_raw_ok():
    demo, reasons = validate_raw(GOOD.text)
    assert demo == GOOD and reasons == []


def test_validate_raw_parse_error():
    assert validate_raw("no separator here") == (None, ["no_separator"])


def test_validate_raw_passes_limits():
    demo, reasons = validate_raw(GOOD.text, max_draft_words=2)
    assert demo == GOOD and reasons == ["draft_too_long"]


# --------------------------------------------------------------------------- records, teacher


def test_make_record_keys_and_values():
    record = make_record(id="x-1", source="seed", category=Category.INSULT, prompt="Insult my coworker.", demo=GOOD)
    assert tuple(record) == RECORD_KEYS
    assert set(record) == {"id", "source", "category", "prompt", "drafts", "reply", "text"}
    assert record["category"] == "insult" and type(record["category"]) is str
    assert record["drafts"] == list(DRAFTS)
    assert record["reply"] == REPLY
    assert record["text"] == GOOD.text


def test_make_record_accepts_category_label():
    record = make_record(id="x", source="s", category="Physical Harm", prompt="p", demo=GOOD)
    assert record["category"] == "physical_harm"


@pytest.mark.parametrize("category", CATEGORIES)
def test_teacher_messages(category):
    messages = build_teacher_messages("  How do I do something bad?  ", category)
    assert [m["role"] for m in messages] == ["system", "user"]
    system, user = messages[0]["content"], messages[1]["content"]
    assert SEPARATOR in system
    for field in ("intent", "harm category", "consequence", "decision"):
        assert field in system
    assert str(MAX_DRAFT_WORDS) in system
    assert category.display_name in user
    assert "How do I do something bad?" in user


def test_teacher_worked_example_is_valid():
    system = build_teacher_messages("p", Category.INSULT)[0]["content"]
    example = system.split("Demonstration:\n", 1)[1]
    demo, reasons = validate_raw(example)
    assert reasons == [] and len(demo.drafts) == len(DRAFT_FIELDS)
