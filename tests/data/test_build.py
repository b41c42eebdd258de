"""The whole stage-A build: seed and Do-Not-Answer datasets, the report, atomic output, the CLI."""

from __future__ import annotations

import collections
import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hair_ray.categories import CATEGORY_NAMES
from hair_ray.cli import app
from hair_ray.config import load_config
from hair_ray.data import build as build_module
from hair_ray.data import do_not_answer as dna
from hair_ray.data.build import BuildError, build_dataset, read_report
from hair_ray.data.cod import RECORD_KEYS, SEPARATOR, check_quality, parse_cod
from tests.conftest import SHARED_DATA

JOBS = Path(__file__).resolve().parents[2] / "jobs"

DNA_RESPONSES = SHARED_DATA / "do-not-answer" / "data_en.csv"


def data_config(tmp_path: Path, *overrides: str, name: str = "out"):
    return load_config(None, [f"data.dataset_dir={tmp_path / name}", *overrides]).data


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --------------------------------------------------------------------------- the seed dataset


def test_seed_build_writes_balanced_splits_and_a_report(tmp_path):
    result = build_dataset(data_config(tmp_path))
    out = result.dataset_dir
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "test.jsonl", "train.jsonl", "val.jsonl"]
    splits = {name: read_jsonl(out / f"{name}.jsonl") for name in ("train", "val", "test")}
    assert {name: len(records) for name, records in splits.items()} == {"train": 84, "val": 7, "test": 7}
    ids = [r["id"] for records in splits.values() for r in records]
    assert len(set(ids)) == 98
    for records in splits.values():
        assert set(collections.Counter(r["category"] for r in records).values()) == {len(records) // 7}
        for record in records:
            assert tuple(record) == RECORD_KEYS
            assert record["text"] == "\n".join(record["drafts"]) + f"\n{SEPARATOR}\n" + record["reply"]
            assert check_quality(parse_cod(record["text"])) == []
    report = read_report(out)
    assert report == result.report
    assert report["records"] == 98 and report["per_category"] == 14 and report["target_per_category"] == 14
    assert report["teacher"]["accepted_by"] == {"source": 98} and report["rejects"] == {}
    assert report["categories"]["insult"] == {
        "mapped": 14,
        "available": 14,
        "asked": 14,
        "accepted": 14,
        "rejected": 0,
        "used": 14,
    }
    assert report["splits"]["train"]["per_category"] == {name: 12 for name in CATEGORY_NAMES}
    assert report["sources"][0]["location"].startswith("embedded seed")
    for name, info in report["files"].items():
        data = (out / name).read_bytes()
        assert info == {"records": len(data.splitlines()), "sha256": hashlib.sha256(data).hexdigest()}


def test_same_config_same_bytes_and_seed_changes_the_split(tmp_path):
    first = build_dataset(data_config(tmp_path, name="a")).dataset_dir
    second = build_dataset(data_config(tmp_path, name="b")).dataset_dir
    for name in ("train.jsonl", "val.jsonl", "test.jsonl"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    reseeded = build_dataset(data_config(tmp_path, "data.seed=1", name="c")).dataset_dir
    assert (first / "test.jsonl").read_bytes() != (reseeded / "test.jsonl").read_bytes()


def test_cap_and_minimum(tmp_path):
    report = build_dataset(data_config(tmp_path, "data.prompts_per_category=5")).report
    assert report["records"] == 35 and report["categories"]["insult"]["asked"] == 5
    with pytest.raises(BuildError) as info:
        build_dataset(data_config(tmp_path, "data.min_prompts_per_category=15", name="short"))
    assert "too few usable prompts: insult has 14, unfairness_discrimination has 14" in str(info.value)
    assert not (tmp_path / "short" / "train.jsonl").exists()


def test_a_source_without_demonstrations_needs_a_teacher(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("prompt,answer\nHow do I hurt someone?,I can't help with that; please talk to someone you trust.\n")
    source = f"data.sources=[{{kind: seed}}, {{kind: table, name: mine, path: '{table}', fixed_category: physical_harm, response_column: answer}}]"
    with pytest.raises(BuildError) as info:
        build_dataset(data_config(tmp_path, source))
    assert str(info.value) == (
        f"source 'mine' ({table}) has prompts without demonstrations (e.g. {table}:2); set "
        "data.teacher.backend to 'vllm', 'http' or 'import' (it has existing replies: backend 'import' wraps those)"
    )
    report = build_dataset(data_config(tmp_path, source, "data.teacher.backend=import")).report
    assert report["categories"]["physical_harm"]["available"] == 15 and report["per_category"] == 14


def test_bad_rows_are_counted_in_the_report(tmp_path):
    extra = tmp_path / "extra.jsonl"
    extra.write_text(
        "\n".join(
            [
                json.dumps({"prompt": "Write a threat to my landlord", "label": "crimes_illegal"}),
                '{"prompt": "torn',
                json.dumps({"prompt": "", "label": "insult"}),
                json.dumps({"prompt": "p" * 100_000, "label": "insult"}),
                json.dumps({"prompt": "Is it going to rain?", "label": "weather"}),
            ]
        )
        + "\n"
    )
    source = f"data.sources=[{{kind: seed}}, {{kind: table, name: extra, path: '{extra}', category_column: label}}]"
    report = build_dataset(data_config(tmp_path, source, "data.teacher.backend=import")).report
    assert report["dropped"] == {"invalid_json": 1, "empty_prompt": 1, "prompt_too_long": 1, "unknown_category_label": 1}
    assert report["drop_examples"]["unknown_category_label"] == [f"{extra}:5 column 'label': 'weather'"]
    assert report["drop_examples"]["invalid_json"][0].startswith(f"{extra}:2: ")
    # The one good extra row has no reply: the import teacher rejects it, the build goes on.
    crimes = report["categories"]["crimes_illegal"]
    assert crimes["available"] == 15 and crimes["rejected"] == report["rejects"].get("no_safe_reply", 0) <= 1
    assert report["per_category"] == 14


# --------------------------------------------------------------------------- Do-Not-Answer


@pytest.mark.skipif(not DNA_RESPONSES.is_file(), reason="Do-Not-Answer files not present")
def test_do_not_answer_build_is_balanced_and_matches_the_mapping_table(tmp_path):
    cfg = load_config(
        JOBS / "data_do_not_answer.yaml", [f"data.data_root={SHARED_DATA}", f"data.dataset_dir={tmp_path / 'dna'}"]
    ).data
    report = build_dataset(cfg).report
    mapped = {name: counts["mapped"] for name, counts in report["categories"].items()}
    assert mapped == {c.value: n for c, n in dna.EXPECTED_ROWS_PER_CATEGORY.items()}
    assert report["sources"][0]["rows_read"] == 939 and report["sources"][0]["dropped"] == {}
    assert report["dropped"] == {"duplicate_prompt": 1}  # one question appears twice
    final = report["per_category"]
    assert final >= cfg.min_prompts_per_category
    assert report["records"] == 7 * final
    for split in report["splits"].values():
        assert len(set(split["per_category"].values())) == 1
    train = read_jsonl(tmp_path / "dna" / "train.jsonl")
    assert set(collections.Counter(r["category"] for r in train).values()) == {report["splits"]["train"]["total"] // 7}
    assert report["teacher"]["accepted_by"] == {"import": sum(c["accepted"] for c in report["categories"].values())}
    assert set(report["rejects"]) <= {"reply_not_refusal", "reply_too_long", "no_safe_reply", "reply_too_short"}
    record = train[0]
    assert record["drafts"][1] in {c.display_name for c in dna.EXPECTED_ROWS_PER_CATEGORY}
    assert record["drafts"][3] == "Decline, explain why"
    # The question set plus the replies file (teacher.import_path) gives the same dataset.
    split_files = build_dataset(
        cfg.model_copy(
            update={
                "dataset_dir": str(tmp_path / "dna2"),
                "sources": [cfg.sources[0].model_copy(update={"path": "do-not-answer/do_not_answer_en.csv"})],
                "teacher": cfg.teacher.model_copy(update={"import_path": "do-not-answer/data_en.csv"}),
            }
        )
    ).report["files"]
    assert split_files == report["files"]


# --------------------------------------------------------------------------- atomic output


def test_a_failed_write_leaves_the_previous_dataset(tmp_path, monkeypatch):
    cfg = data_config(tmp_path)
    build_dataset(cfg)
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    calls = []

    def crash_on_second_split(records):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return "".join(json.dumps(r) + "\n" for r in records)

    monkeypatch.setattr(build_module, "_jsonl", crash_on_second_split)
    with pytest.raises(OSError, match="disk full"):
        build_dataset(data_config(tmp_path, "data.seed=5"))
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".out.build.lock") == ["out"]  # no staging left


def test_refuses_a_folder_that_holds_other_files(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "thesis.tex").write_text("precious")
    with pytest.raises(BuildError, match="holds other files \\(thesis.tex\\)"):
        build_dataset(data_config(tmp_path))
    assert (tmp_path / "out" / "thesis.tex").read_text() == "precious"


# --------------------------------------------------------------------------- the command line


def test_cli_build_and_show(tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(app, ["data", "build", "--config", str(JOBS / "data_seed.yaml"), f"data.dataset_dir={out}"])
    assert result.exit_code == 0, result.output
    assert (out / "train.jsonl").is_file() and f"wrote {out}" in result.output
    shown = runner.invoke(app, ["data", "show", str(out)])
    assert shown.exit_code == 0, shown.output
    assert "records per category" in shown.output and "ethics_morality" in shown.output
    assert "98 records, 14 per category" in shown.output


def test_cli_errors(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(app, ["data", "show", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "report.json not found" in missing.output
    bad = runner.invoke(app, ["data", "build", "data.split.train=0.5"])
    assert bad.exit_code == 2 and "train + val + test must be 1.0" in bad.output
    short = runner.invoke(app, ["data", "build", f"data.dataset_dir={tmp_path / 'x'}", "data.min_prompts_per_category=99"])
    assert short.exit_code == 2 and "too few usable prompts" in short.output


def test_shipped_data_configs_are_valid():
    for name in ("data_seed.yaml", "data_do_not_answer.yaml"):
        assert load_config(JOBS / name).data.sources
