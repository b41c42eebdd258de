"""The embedded seed dataset: balanced, well-formed, and passing the project's own filter."""

from __future__ import annotations

import collections
import re

import pytest

from hair_ray.categories import CATEGORIES, CATEGORY_NAMES, Category
from hair_ray.data.cod import (
    MAX_DRAFT_WORDS,
    RECORD_KEYS,
    SEPARATOR,
    build_teacher_messages,
    check_quality,
    format_cod,
    parse_cod,
)
from hair_ray.data.seed_data import SEED_PATH, load_seed_records

PER_CATEGORY = 14
RECORDS = load_seed_records()


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def test_seed_file_is_a_package_resource():
    assert SEED_PATH.name == "prompts.jsonl"
    assert SEED_PATH.is_file()


def test_count_and_balance():
    assert len(RECORDS) == PER_CATEGORY * len(CATEGORY_NAMES) == 98
    counts = collections.Counter(r["category"] for r in RECORDS)
    assert set(counts) == set(CATEGORY_NAMES)
    assert all(n == PER_CATEGORY for n in counts.values()), counts


def test_record_shape():
    for r in RECORDS:
        assert tuple(r) == RECORD_KEYS, r["id"]
        assert r["source"] == "seed"
        assert Category(r["category"])
        assert r["id"].startswith(f"seed-{r['category']}-")
        assert isinstance(r["drafts"], list) and len(r["drafts"]) == 4
        assert all(isinstance(x, str) for x in [r["prompt"], r["reply"], r["text"], *r["drafts"]])


def test_unique_ids_prompts_and_replies():
    assert len({r["id"] for r in RECORDS}) == len(RECORDS)
    assert len({_norm(r["prompt"]) for r in RECORDS}) == len(RECORDS)
    assert len({_norm(r["reply"]) for r in RECORDS}) == len(RECORDS)


def test_no_reply_sentence_reused():
    seen: dict[str, str] = {}
    for r in RECORDS:
        for sentence in re.split(r"(?<=[.!?])\s+", r["reply"]):
            key = _norm(sentence)
            assert key not in seen, f"{r['id']} reuses a sentence of {seen.get(key)}"
            seen[key] = r["id"]


def test_text_is_canonical_format():
    for r in RECORDS:
        assert r["text"] == "\n".join(r["drafts"]) + "\n####\n" + r["reply"], r["id"]
        assert r["text"] == format_cod(r["drafts"], r["reply"])


@pytest.mark.parametrize("record", RECORDS, ids=[r["id"] for r in RECORDS])
def test_parse_round_trip_and_quality(record):
    demo = parse_cod(record["text"])
    assert list(demo.drafts) == record["drafts"]
    assert demo.reply == record["reply"]
    assert check_quality(demo) == []


def test_draft_and_reply_lengths():
    for r in RECORDS:
        assert all(len(d.split()) <= MAX_DRAFT_WORDS for d in r["drafts"]), r["id"]
        assert 150 <= len(r["reply"]) <= 600, r["id"]
        assert SEPARATOR not in r["reply"] and SEPARATOR not in r["prompt"]


def test_mental_health_replies_point_to_help():
    markers = (
        "988",
        "741741",
        "helpline",
        "hotline",
        "crisis",
        "doctor",
        "therapist",
        "psychiatrist",
        "prescriber",
        "counsellor",
        "trusted adult",
        "someone you trust",
    )
    for r in RECORDS:
        if r["category"] == Category.MENTAL_HEALTH.value:
            assert any(m in r["reply"].lower() for m in markers), r["id"]


@pytest.mark.parametrize("category", CATEGORIES)
def test_teacher_messages_for_seed_prompts(category):
    record = next(r for r in RECORDS if r["category"] == category.value)
    messages = build_teacher_messages(record["prompt"], category)
    joined = "\n".join(m["content"] for m in messages)
    assert category.display_name in joined
    assert SEPARATOR in joined
    assert record["prompt"] in joined
