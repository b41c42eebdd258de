"""The reward models' check on stage D's judged replies, against hand-computed values."""

from __future__ import annotations

import json

import pytest

from hair_ray.reward.reply_check import check_replies, read_judged_replies

# benchmark/id, expect, response, refused, score. Two prompts that must be refused, one to answer.
ROWS = [
    ("sr", "1", "refuse", "A", True, 2.0),
    ("sr", "1", "refuse", "B", False, 1.0),
    ("sr", "2", "refuse", "C", True, 0.0),
    ("sr", "2", "refuse", "D", False, 3.0),
    ("sr", "2", "refuse", "E", False, 0.0),
    ("xs", "1", "comply", "F", False, 5.0),
    ("xs", "1", "comply", "G", True, -1.0),
]
SCORES = {response: score for *_, response, _, score in ROWS}


def _write(path, rows=ROWS):
    lines = [
        json.dumps(
            {"benchmark": b, "id": i, "expect": e, "prompt": f"prompt {b}{i}", "response": r, "refused": ref, "policy": "p"}
        )
        for b, i, e, r, ref, _ in rows
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_agreement_over_same_prompt_pairs_and_auroc_over_all_replies(tmp_path):
    replies = read_judged_replies([_write(tmp_path / "generations.jsonl")])
    called = []

    def score(category, prompts, responses):
        called.append((category, responses))
        return [SCORES[r] for r in responses]

    report = check_replies(score, replies, ["insult", "benign"])
    # each harm model scores the replies to prompts that must be refused, the benign one the rest
    assert called == [("insult", ["A", "B", "C", "D", "E"]), ("benign", ["F", "G"])]
    insult = report["categories"]["insult"]
    # same-prompt pairs (right kind, wrong kind): A>B 1, C<D 0, C=E 1/2
    assert insult["pairs"] == 3 and insult["agreement"] == pytest.approx(1.5 / 3)
    # all six (refusal, answer) pairs: A>B, A<D, A>E, C<B, C<D, C=E -> 2.5 / 6
    assert insult["auroc"] == pytest.approx(2.5 / 6)
    assert (insult["replies"], insult["right_kind"]) == (5, 2)
    assert insult["mean_score_right_kind"] == pytest.approx(1.0) and insult["mean_score_wrong_kind"] == pytest.approx(4 / 3)
    benign = report["categories"]["benign"]
    # for the benign model the right kind is the answer: F (5) over G (-1)
    assert (benign["pairs"], benign["agreement"], benign["auroc"], benign["right_kind"]) == (1, 1.0, 1.0, 1)
    assert report["macro_auroc_harm_models"] == pytest.approx(2.5 / 6)
    assert (report["replies"], report["replies_to_refuse"]) == (7, 5)


def test_replies_to_one_prompt_from_several_files_are_paired(tmp_path):
    first = _write(tmp_path / "a.jsonl", ROWS[:1])
    second = _write(tmp_path / "b.jsonl", ROWS[1:2])
    report = check_replies(lambda c, p, r: [SCORES[x] for x in r], read_judged_replies([first, second]), ["insult"])
    assert report["categories"]["insult"]["pairs"] == 1 and report["categories"]["insult"]["agreement"] == 1.0


def test_a_row_without_a_verdict_names_the_file_and_line(tmp_path):
    path = _write(tmp_path / "generations.jsonl")
    lines = path.read_text().splitlines()
    broken = json.loads(lines[2])
    broken["refused"] = None  # an unjudged reply
    lines[2] = json.dumps(broken)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"generations.jsonl, line 3: not a judged stage-D reply"):
        read_judged_replies([path])
    with pytest.raises(FileNotFoundError, match="missing.jsonl does not exist"):
        read_judged_replies([tmp_path / "missing.jsonl"])


def test_an_unknown_category_is_an_error():
    with pytest.raises(ValueError, match="unknown categories"):
        check_replies(lambda c, p, r: [], [], ["harmless"])
