"""Golden tests for the sub-sentence splitter (hair_ray.algo.split)."""

from __future__ import annotations

import pytest

from hair_ray.algo.split import split_sub_sentences

COD_DEMO = (
    "intent: weapon request\n"
    "category: crimes_illegal\n"
    "consequence: real harm\n"
    "decision: refuse\n"
    "####\n"
    "I can't help with that. Making weapons is illegal; it can hurt people."
)


def test_chain_of_draft_demo() -> None:
    # four draft lines, the #### separator dropped, the reply cut into sentences, then at ';'
    assert split_sub_sentences(COD_DEMO) == [
        "intent: weapon request",
        "category: crimes_illegal",
        "consequence: real harm",
        "decision: refuse",
        "I can't help with that.",
        "Making weapons is illegal;",
        "it can hurt people.",
    ]


def test_list_markers_are_stripped() -> None:
    text = "- first item\n* second\n• third\n1. fourth\n2) fifth"
    assert split_sub_sentences(text) == ["first item", "second", "third", "fourth", "fifth"]


def test_lines_without_words_are_dropped() -> None:
    assert split_sub_sentences("-\n*\n---\n####\n...\n___") == []


@pytest.mark.parametrize("text", ["", " ", "\n\n", "  \n\t \r\n"])
def test_empty_or_whitespace(text: str) -> None:
    assert split_sub_sentences(text) == []


def test_pysbd_keeps_abbreviations() -> None:
    # a naive split on ". " would cut after "Dr."
    pieces = split_sub_sentences("Dr. Smith went home. He slept.")
    assert pieces == ["Dr. Smith went home.", "He slept."]


def test_question_and_exclamation_and_crlf() -> None:
    text = "Call 911 now! Are you safe?\r\nYes."
    assert split_sub_sentences(text) == ["Call 911 now!", "Are you safe?", "Yes."]


def test_cjk_terminators() -> None:
    text = "我不能帮助你。这是违法的！你还好吗？"
    assert split_sub_sentences(text) == ["我不能帮助你。", "这是违法的！", "你还好吗？"]


def test_full_width_semicolon() -> None:
    assert split_sub_sentences("不可以；这很危险。") == ["不可以；", "这很危险。"]


def test_long_piece_is_chunked_by_words() -> None:
    # 100 words, max 40 -> chunks of 40, 40 and 20 words, in order, nothing lost
    words = [f"w{i}" for i in range(100)]
    pieces = split_sub_sentences(" ".join(words), max_words=40)
    assert pieces == [" ".join(words[:40]), " ".join(words[40:80]), " ".join(words[80:])]


def test_long_cjk_piece_is_chunked_by_characters() -> None:
    # no spaces: each Han character counts as a word -> 50 characters, max 20 -> 20, 20, 10
    pieces = split_sub_sentences("汉" * 50, max_words=20)
    assert [len(p) for p in pieces] == [20, 20, 10]


def test_exactly_max_words_is_one_piece() -> None:
    text = " ".join(["word"] * 40)
    assert split_sub_sentences(text, max_words=40) == [text]


def test_deterministic() -> None:
    assert split_sub_sentences(COD_DEMO) == split_sub_sentences(COD_DEMO)


def test_bad_max_words() -> None:
    with pytest.raises(ValueError):
        split_sub_sentences("hello", max_words=0)
