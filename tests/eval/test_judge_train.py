"""Judge data and training on the real public files: the label mapping, the split by answering
model, the keyword rule's selection, a small training run, the shipped classifier's recorded
numbers against a fresh `check`, and clear errors for bad data."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter

import pytest
from typer.testing import CliRunner

from hair_ray.eval.judge_cli import judge_app
from hair_ray.eval.judge_train import (
    ALPACA_FILES,
    ANSWERING_MODELS,
    DEFAULT_VAL_MODELS,
    DNA_FILE,
    JudgeDataError,
    TrainSettings,
    binary_metrics,
    check_judge,
    read_rows,
    refusal_label,
    select_keyword_rule,
    split_by_model,
    train_classifier,
)
from hair_ray.eval.judges.classifier import HEAD_FILE, META_FILE, SHIPPED_DIR, ClassifierJudge
from hair_ray.eval.judges.keyword import KEYWORD_PHRASES, OPENING_CHARS
from tests.conftest import SHARED_DATA

runner = CliRunner()


@pytest.fixture(scope="module")
def rows():
    return read_rows(SHARED_DATA)


@pytest.fixture(scope="module")
def minilm():
    from hair_ray.models.encoders import SentenceTransformerEncoder

    return SentenceTransformerEncoder("builtin:all-minilm-l6-v2")


def test_label_mapping():
    assert [refusal_label(a) for a in range(6)] == [True, False, False, False, True, False]
    assert [refusal_label(a, frozenset({0, 3, 4})) for a in range(6)] == [True, False, False, True, True, False]
    assert refusal_label(None) is False  # an AlpacaEval answer complies
    with pytest.raises(ValueError, match="not one of 0-5"):
        refusal_label(6)


def test_rows_of_the_real_files(rows):
    data, drops, hashes = rows
    assert Counter(r.model for r in data) == {
        **{m: 939 for m in ANSWERING_MODELS[:6]},
        "gpt4_1106_preview": 805,
        "text_davinci_003": 803,
    }
    assert drops == {"text_davinci_003:empty_response": 2}
    actions = Counter(r.action for r in data if r.action is not None)
    assert actions == {0: 1541, 1: 1439, 2: 203, 3: 690, 4: 1576, 5: 185}
    assert sum(r.refused for r in data) == 1541 + 1576
    assert sum(r.refused_alt for r in data) == 1541 + 690 + 1576
    assert not any(r.refused for r in data if r.action is None)
    assert set(hashes) == {DNA_FILE, *ALPACA_FILES.values()} and all(len(h) == 64 for h in hashes.values())


def test_split_holds_out_whole_answering_models(rows):
    data = rows[0]
    train, val = split_by_model(data, DEFAULT_VAL_MODELS)
    train_models, val_models = {r.model for r in train}, {r.model for r in val}
    assert val_models == set(DEFAULT_VAL_MODELS)
    assert not train_models & val_models
    assert train_models | val_models == set(ANSWERING_MODELS)
    assert len(train) + len(val) == len(data)
    with pytest.raises(JudgeDataError, match="unknown validation model"):
        split_by_model(data, ["gpt-5"])
    with pytest.raises(JudgeDataError, match="no training rows"):
        split_by_model(data, ANSWERING_MODELS)


def test_keyword_rule_is_the_one_selected_on_the_training_models(rows):
    train, _ = split_by_model(rows[0], DEFAULT_VAL_MODELS)
    rule = select_keyword_rule(train)
    assert rule["opening_chars"] == OPENING_CHARS
    assert tuple(rule["phrases"]) == KEYWORD_PHRASES


def test_binary_metrics_refusal_is_positive():
    m = binary_metrics([True, True, False, False, True], [True, False, False, True, True])
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 1, 1)
    assert m["accuracy"] == pytest.approx(0.6) and m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3) and m["refusals"] == 3
    assert binary_metrics([False], [False])["precision"] is None


def test_shipped_validation_numbers_are_what_check_recomputes(minilm):
    meta = json.loads((SHIPPED_DIR / META_FILE).read_text())
    result = check_judge(SHARED_DATA, "classifier", encoder=minilm)
    assert result["models"] == meta["validation"]["models"] == list(DEFAULT_VAL_MODELS)
    assert result["trained_on_validation_models"] == [] and result["data_matches_training"] is True
    assert result["rows"] == meta["validation"]["rows"]
    for definition in ("main", "alt_034"):
        for judge in ("classifier", "keyword", "is_refusal"):
            for model in [*DEFAULT_VAL_MODELS, "pooled"]:
                recorded = meta["validation"]["metrics"][definition][judge][model]
                fresh = result["metrics"][definition][judge][model]
                assert fresh["n"] == recorded["n"]
                assert fresh["accuracy"] == pytest.approx(recorded["accuracy"], abs=1e-6), (definition, judge, model)
    pooled = meta["validation"]["metrics"]["main"]["classifier"]["pooled"]
    assert pooled["accuracy"] >= 0.9  # the target docs/judges.md states
    assert set(meta["training"]["models"]).isdisjoint(meta["validation"]["models"])


def test_a_small_training_run_writes_a_loadable_artifact(tmp_path, minilm):
    out = tmp_path / "clf"
    settings = TrainSettings(epochs=40, max_rows_per_model=25, leave_one_model_out=False)
    meta = train_classifier(SHARED_DATA, out, ["Claude", "text_davinci_003"], settings, encoder=minilm)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clf"]  # no staging folder left behind
    assert sorted(p.name for p in out.iterdir()) == sorted([HEAD_FILE, META_FILE])
    assert sum(p.stat().st_size for p in out.iterdir()) < 1_000_000
    assert meta["validation"]["models"] == ["Claude", "text_davinci_003"]
    assert set(meta["training"]["models"]) == set(ANSWERING_MODELS) - {"Claude", "text_davinci_003"}
    judge = ClassifierJudge.load(out, encoder=minilm)
    p = judge.predict_proba(
        ["I'm sorry, but I can't help with that.", "Here is a recipe for pancakes: mix flour, eggs and milk."]
    )
    assert all(0.0 <= q <= 1.0 for q in p)
    assert judge.describe()["validation"]["models"] == ["Claude", "text_davinci_003"]


def _data_root(tmp_path, *, drop=None, dna_text=None):
    root = tmp_path / "data"
    for relative in (DNA_FILE, *ALPACA_FILES.values()):
        if relative == drop:
            continue
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if relative == DNA_FILE and dna_text is not None:
            target.write_text(dna_text)
        else:
            shutil.copyfile(SHARED_DATA / relative, target)
    return root


def test_a_missing_data_file_is_named(tmp_path):
    missing = ALPACA_FILES["text_davinci_003"]
    root = _data_root(tmp_path, drop=missing)
    with pytest.raises(JudgeDataError, match="text_davinci_003_model_outputs.json: not found"):
        read_rows(root)
    result = runner.invoke(judge_app, ["check", "--data-root", str(root), "--judge", "keyword"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(root / missing) in lines[0]


def test_wrong_columns_are_named(tmp_path):
    with (SHARED_DATA / DNA_FILE).open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    renamed = [c.replace("vicuna-7b_action", "vicuna_action") for c in header]
    root = _data_root(tmp_path, dna_text=",".join(renamed) + "\n")
    result = runner.invoke(judge_app, ["train", "--data-root", str(root), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {root / DNA_FILE}: missing column(s) vicuna-7b_action (expected Do-Not-Answer's data_en.csv)"
    ]
    assert not (tmp_path / "out").exists()
