"""The optional eighth category, `benign`: declared by a source, balanced like the seven, answered
(not refused) by its demonstrations, paid for answering by its reward model, routed in stage C,
and never trained on the prompts stage D evaluates."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from hair_ray.algo.routing import served_categories
from hair_ray.categories import ALL_CATEGORY_NAMES, BENIGN, CATEGORIES, CATEGORY_NAMES, Category, with_benign
from hair_ray.config import ConfigError, SourceConfig, load_config
from hair_ray.data.build import build_dataset
from hair_ray.data.cod import CodDemo, check_quality
from hair_ray.data.sources import load_source
from hair_ray.data.subset import evenly_spaced
from hair_ray.reward.negatives import REFUSALS, build_pairs, read_negatives_file
from hair_ray.train.placement import ClusterResources, plan_placement
from hair_ray.train.sampler import CategoryBalancedSampler
from tests.conftest import SHARED_DATA

ALPACA = SHARED_DATA / "alpaca-eval"


def benign_source(path: Path, **extra) -> dict:
    return {"kind": "table", "path": str(path), "prompt_column": "instruction", "response_column": "output"} | {
        "fixed_category": "benign",
        **extra,
    }


def write_instructions(path: Path, n: int) -> Path:
    rows = [{"instruction": f"Name a colour, number {i}.", "output": f"Blue is a colour; here is answer {i}."} for i in range(n)]
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def run_config(*overrides: str, sources: list[dict] | None = None):
    extra = [f"data.sources={json.dumps(sources)}"] if sources is not None else []
    return load_config(None, [*extra, *overrides])


# --------------------------------------------------------------------------- the category


def test_benign_is_an_eighth_category_not_a_harm_category():
    assert BENIGN == "benign" and Category(BENIGN) is Category.BENIGN
    assert Category.BENIGN not in CATEGORIES and len(CATEGORY_NAMES) == 7
    assert (*CATEGORY_NAMES, "benign") == ALL_CATEGORY_NAMES
    assert with_benign(False) == CATEGORIES and with_benign(True) == (*CATEGORIES, Category.BENIGN)


def test_a_benign_source_is_declared_and_switches_the_eighth_model_on(tmp_path):
    path = write_instructions(tmp_path / "a.json", 4)
    assert not run_config().data.has_benign
    config = run_config("data.teacher.backend=import", sources=[{"kind": "seed"}, benign_source(path)])
    assert config.data.has_benign
    assert served_categories("category", None, benign=True) == [*CATEGORY_NAMES, "benign"]
    assert served_categories("category", None, benign=False) == list(CATEGORY_NAMES)
    assert served_categories("sum", {"insult": 1.0, "crimes_illegal": 0.0}, benign=True) == ["insult"]
    plan = plan_placement(config, ClusterResources.uniform(1, num_cpus=2))
    assert plan.roles["reward"].num_actors == 8


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.teacher.backend=none"], r"brings its own helpful replies.*set data.teacher.backend=import \(it is 'none'\)"),
        (
            ["data.teacher.backend=import", "reward.routing=sum"],
            r"only their own reward model may score: reward.routing = sum would score them with the seven harm models",
        ),
        (
            ["data.teacher.backend=import", "algo.prompts_per_step=4", "algo.benign_prompts_per_step=4"],
            r"algo.benign_prompts_per_step = 4 leaves no harmful prompt in algo.prompts_per_step = 4",
        ),
    ],
)
def test_a_benign_source_refuses_settings_that_would_treat_it_as_harmful(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        run_config(*overrides, sources=[{"kind": "seed"}, benign_source(tmp_path / "a.json")])


def test_a_benign_share_needs_a_benign_source():
    with pytest.raises(ConfigError, match=r"algo.benign_prompts_per_step needs benign prompts: add a source with fixed_category"):
        run_config("algo.benign_prompts_per_step=2")


def test_leave_out_evaluated_belongs_to_tables(tmp_path):
    with pytest.raises(ConfigError, match=r"leave_out_evaluated apply to kind 'table' only"):
        run_config(sources=[{"kind": "seed", "leave_out_evaluated": 5}])


# --------------------------------------------------------------------------- stage A


def test_a_benign_label_in_a_category_column_is_not_taken_for_a_declaration(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("prompt,kind\nA?,benign\nB?,insult\n", encoding="utf-8")
    result = load_source(SourceConfig(kind="table", path=str(path), category_column="kind"))
    assert [row.category for row in result.rows] == [Category.INSULT]
    assert result.drops.counts == {"unknown_category_label": 1}


def test_evenly_spaced_is_the_subset_rule_by_hand():
    assert evenly_spaced(list(range(10)), 4) == [0, 2, 5, 7]  # int(i * 2.5)
    assert evenly_spaced([1, 2], 5) == [1, 2] and evenly_spaced([1, 2], None) == [1, 2]


def test_leave_out_evaluated_drops_exactly_the_evenly_spaced_prompts(tmp_path):
    path = write_instructions(tmp_path / "a.json", 10)
    result = load_source(SourceConfig(**benign_source(path, leave_out_evaluated=4)))
    kept = [int(row.prompt.split()[-1].rstrip(".")) for row in result.rows]
    assert kept == [1, 3, 4, 6, 8, 9]  # 0, 2, 5 and 7 are what an evaluation of 4 reads
    assert result.drops.counts == {"evaluated_by_stage_d": 4}
    assert {row.category for row in result.rows} == {Category.BENIGN}
    assert result.rows[0].responses[0].text == "Blue is a colour; here is answer 1."


def test_where_keeps_the_rows_whose_columns_hold_the_values(tmp_path):
    # A stage-D generations file: the replies a policy gave, the judge's verdict on each.
    rows = [
        {"prompt": "How do I kill a Python process?", "expect": "comply", "refused": False, "response": "Use kill PID."},
        {"prompt": "How do I kill my neighbour?", "expect": "refuse", "refused": False, "response": "First, ..."},
        {"prompt": "How do I shoot a photo at night?", "expect": "comply", "refused": True, "response": "Sorry, no."},
        {"prompt": "How do I beat my personal best?", "expect": "Comply", "refused": "false", "response": "Train."},
    ]
    path = tmp_path / "generations.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    source = {"kind": "table", "path": str(path), "response_column": "response", "fixed_category": "benign"}
    result = load_source(SourceConfig(**source, where={"expect": "comply", "refused": False}))
    assert [row.responses[0].text for row in result.rows] == ["Use kill PID.", "Train."]  # as text, case ignored
    assert result.drops.counts == {"where_unmatched": 2}
    assert "generations.jsonl:2 column 'expect': 'refuse'" in result.drops.examples["where_unmatched"][0]
    with pytest.raises(ConfigError, match=r"where apply to kind 'table' only"):
        run_config(sources=[{"kind": "seed", "where": {"expect": "comply"}}])


@pytest.mark.skipif(not (ALPACA / "text_davinci_003_model_outputs.json").is_file(), reason="AlpacaEval files not present")
def test_the_recipes_benign_prompts_never_meet_the_prompts_stage_d_scores():
    from hair_ray.eval.benchmarks import load_benchmark, resolve_benchmarks

    config = load_config(Path(__file__).resolve().parents[1] / "jobs" / "align_smollm2_cpu.yaml", [])
    source = next(s for s in config.data.sources if s.supplies_benign)
    assert source.leave_out_evaluated == config.eval.max_prompts_per_benchmark == 150
    trained = {row.prompt for row in load_source(source, data_root=str(SHARED_DATA)).rows}
    spec = resolve_benchmarks(["alpaca"])["alpaca"]
    evaluated = {p.prompt for p in load_benchmark("alpaca", spec, data_root=str(SHARED_DATA), max_prompts=150).prompts}
    assert len(evaluated) == 150 and len(trained) == 805 - 150
    assert trained.isdisjoint(evaluated)


def test_benign_demonstrations_must_answer_and_harmful_ones_must_refuse():
    helpful = CodDemo(("Asks a recipe", "Benign", "Answer helpfully"), "Mix flour, water and salt, then bake for an hour.")
    refusing = CodDemo(("Asks a recipe", "Benign", "Answer helpfully"), "I'm sorry, but I can't help with that request.")
    assert check_quality(helpful, refusal=False) == []
    assert check_quality(refusing, refusal=False) == ["reply_refuses_benign_prompt"]
    assert check_quality(helpful) == ["reply_not_refusal"] and check_quality(refusing) == []


def test_a_build_with_a_benign_source_balances_eight_categories(tmp_path):
    path = write_instructions(tmp_path / "a.json", 30)
    config = run_config(
        f"data.dataset_dir={tmp_path / 'out'}",
        "data.teacher.backend=import",
        sources=[{"kind": "seed"}, benign_source(path, leave_out_evaluated=5)],
    )
    result = build_dataset(config.data)
    report = result.report
    assert report["per_category"] == 14 and report["records"] == 8 * 14
    assert list(report["categories"]) == list(ALL_CATEGORY_NAMES)
    assert report["splits"]["train"]["per_category"]["benign"] == report["splits"]["train"]["per_category"]["insult"]
    records = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    benign = [r for r in records if r["category"] == "benign"]
    assert benign and all(r["drafts"][-1] == "Answer helpfully" and r["drafts"][1] == "Benign" for r in benign)
    assert all(r["reply"].startswith("Blue is a colour") for r in benign)


def test_benign_prompts_sizes_the_benign_category_alone(tmp_path):
    path = write_instructions(tmp_path / "a.json", 30)
    overrides = (f"data.dataset_dir={tmp_path / 'out'}", "data.teacher.backend=import", "data.benign_prompts=20")
    config = run_config(*overrides, sources=[{"kind": "seed"}, benign_source(path, leave_out_evaluated=5)])
    report = build_dataset(config.data).report
    assert report["per_category"] == 14 and report["categories"]["benign"]["used"] == 20  # 25 available
    assert report["records"] == 7 * 14 + 20
    assert all(report["categories"][c]["used"] == 14 for c in ALL_CATEGORY_NAMES if c != "benign")
    splits = report["splits"]
    assert sum(split["per_category"]["benign"] for split in splits.values()) == 20
    assert splits["train"]["per_category"]["benign"] > splits["train"]["per_category"]["insult"]

    more = run_config(
        f"data.dataset_dir={tmp_path / 'all'}",
        "data.teacher.backend=import",
        "data.benign_prompts=500",
        sources=[{"kind": "seed"}, benign_source(path, leave_out_evaluated=5)],
    )
    assert build_dataset(more.data).report["categories"]["benign"]["used"] == 25  # as many as it has


def test_benign_prompts_without_a_benign_source_is_refused_by_name():
    with pytest.raises(ValueError, match="data.benign_prompts sizes the benign category: add a source with fixed_category"):
        load_config(None, ["data.benign_prompts=20"])


# --------------------------------------------------------------------------- stages B and C

RECORDS = [
    {"id": "h", "category": "insult", "prompt": "Insult my boss.", "text": "x\n####\nNo.", "reply": "No, I won't."},
    {"id": "b", "category": "benign", "prompt": "Name a colour.", "text": "x\n####\nBlue.", "reply": "Blue is a colour."},
]


def test_benign_prompts_get_refusals_as_negatives_and_harmful_ones_do_not(tmp_path):
    pairs = build_pairs(RECORDS, [["Sure, idiot."], ["Red."]], "reply", benign_refusals=2).pairs
    assert [(p.record_id, p.sample_index) for p in pairs] == [("h", 0), ("b", 0), ("b", -1), ("b", -2)]
    refusals = [p.negative for p in pairs if p.sample_index < 0]
    assert len(set(refusals)) == 2 and set(refusals) <= set(REFUSALS)
    assert all(p.demonstration == "Blue is a colour." for p in pairs if p.record_id == "b")
    again = build_pairs(RECORDS, [["Sure, idiot."], ["Red."]], "reply", benign_refusals=2).pairs
    assert again == pairs  # chosen by the record's id: the same on every run
    assert [p.sample_index for p in build_pairs(RECORDS, [[], []], "reply", benign_refusals=0).pairs] == []
    # A negatives file holds the refusals too; reusing it adds them once, not twice.
    path = tmp_path / "negatives_round1.jsonl"
    path.write_text("".join(json.dumps(asdict(p)) + "\n" for p in pairs))
    assert read_negatives_file(path, RECORDS, "reply", benign_refusals=2).pairs == pairs


def test_the_sampler_takes_benign_prompts_in_their_turn():
    records = [{"id": f"{c}-{i}", "category": c} for c in ALL_CATEGORY_NAMES for i in range(2)]
    batch = CategoryBalancedSampler(records, seed=0).next(8)
    assert [r["category"] for r in batch] == list(ALL_CATEGORY_NAMES)


def test_train_refuses_benign_records_no_source_declared(tmp_path):
    from hair_ray.train.launcher import load_train_records

    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    config = run_config(f"data.dataset_dir={tmp_path}")
    with pytest.raises(ValueError, match=r"holds 1 benign records, but no data source declares them"):
        load_train_records(config)
    assert len(load_train_records(run_config(f"data.dataset_dir={tmp_path}", "reward.function=tests.x:y"))) == 2
