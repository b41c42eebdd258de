"""Micro-benchmark of the hardness path: encoder throughput and the cost of the α maths.

(a) Encoder throughput, in pieces per second, for each backend that imports here, measured side
    by side in the same run with a baseline:
      - baseline:  one ``encode`` call per piece (what a naive scorer would do);
      - batched:   one ``encode`` call for all pieces (what ``embed_pieces`` does);
      - scorer:    ``HardnessScorer.data_hardness`` in-process (split + encode + α^D), on the
                   seed dataset's replies (``--scorer-samples``) scored against their own
                   demonstrations.
    Pieces are real sub-sentences of the seed dataset (hair_ray/data/seed/prompts.jsonl).
(b) The hardness maths per 1,000 samples on random tensors with realistic shapes: groups of 8,
    3..9 pieces per response (mean 6), 384-dim: ``data_hardness``, ``model_responsiveness``,
    ``grpo_s_advantages``.

Every number is the median over ``--repeats`` runs (time.perf_counter), after one warm-up.

    .venv/bin/python benchmarks/bench_hardness.py                      # MiniLM + maths
    PYTHONPATH=. .venv-clip/bin/python benchmarks/bench_hardness.py \\
        --encoders open_clip --parts encoders --merge                  # adds open_clip

The results go to benchmarks/results/hardness_cpu.json (``--output``); ``--merge`` updates
that file with what this run measured and keeps the rest (the two backends live in two venvs).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from hair_ray.algo.hardness import data_hardness, grpo_s_advantages, model_responsiveness  # noqa: E402
from hair_ray.algo.split import split_sub_sentences  # noqa: E402

SEED = ROOT / "hair_ray" / "data" / "seed" / "prompts.jsonl"
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "hardness_cpu.json"


# --------------------------------------------------------------------------------------------
# timing helpers
# --------------------------------------------------------------------------------------------


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs, after one untimed warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def environment() -> dict[str, Any]:
    """Where the numbers come from; the load average matters on a shared machine."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "load_average_1m_at_start": os.getloadavg()[0],
        "cuda": torch.cuda.is_available(),
    }


# --------------------------------------------------------------------------------------------
# (a) encoders
# --------------------------------------------------------------------------------------------


def seed_records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SEED.read_text(encoding="utf-8").splitlines() if line.strip()]


def seed_pieces(count: int) -> list[str]:
    """``count`` real sub-sentences (demonstrations and prompts of the seed set), cycled."""
    pool = [p for r in seed_records() for text in (r["text"], r["prompt"]) for p in split_sub_sentences(text)]
    return [pool[i % len(pool)] for i in range(count)]


ENCODER_SPECS: dict[str, Callable[[argparse.Namespace], SimpleNamespace]] = {
    # HardnessConfig-shaped objects: the benchmark builds encoders exactly as the scorer does.
    "minilm": lambda a: SimpleNamespace(
        encoder="sentence_transformers", sentence_transformer="builtin:all-minilm-l6-v2", max_piece_words=40
    ),
    "open_clip": lambda a: SimpleNamespace(
        encoder="open_clip",
        open_clip_model=a.open_clip_model,
        open_clip_pretrained=None if a.open_clip_pretrained == "none" else a.open_clip_pretrained,
        max_piece_words=40,
    ),
}


def bench_encoder(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """Baseline (one call per piece) vs batched encode, and the in-process scorer path."""
    from hair_ray.workers.scorer import HardnessScorer

    config = ENCODER_SPECS[kind](args)
    start = time.perf_counter()
    try:
        scorer = HardnessScorer(config, device=args.device, batch_size=args.batch_size)
    except ImportError as err:  # the backend lives in the other venv
        return {"skipped": f"{type(err).__name__}: {err}"}
    load_s = time.perf_counter() - start
    encoder = scorer._encoder  # the scorer's own encoder: what it measures is what it runs

    pieces = seed_pieces(args.pieces)
    baseline_pieces = pieces[: args.baseline_pieces]
    t_batched = median_seconds(lambda: encoder.encode(pieces, batch_size=args.batch_size), args.repeats)
    t_single = median_seconds(lambda: [encoder.encode([p]) for p in baseline_pieces], args.repeats)

    # Scorer path: each seed reply scored against its own demonstration, groups of 8.
    records = seed_records()[: args.scorer_samples]
    scorer.cache_demonstrations(records)
    responses = [r["reply"] for r in records]
    demo_ids = [r["id"] for r in records]
    group_ids = [i // 8 for i in range(len(records))]
    num_pieces = sum(scorer.data_hardness(responses, demo_ids, group_ids)["num_pieces"])
    t_scorer = median_seconds(lambda: scorer.data_hardness(responses, demo_ids, group_ids), args.repeats)

    batched = len(pieces) / t_batched
    single = len(baseline_pieces) / t_single
    return {
        "name": encoder.name,
        "dim": encoder.dim,
        "load_seconds": load_s,
        "repeats": args.repeats,
        "baseline_one_call_per_piece": {"pieces": len(baseline_pieces), "pieces_per_second": single},
        "batched": {"pieces": len(pieces), "batch_size": args.batch_size, "pieces_per_second": batched},
        "batched_over_baseline": batched / single,
        "scorer_data_hardness": {
            "samples": len(responses),
            "pieces": num_pieces,
            "samples_per_second": len(responses) / t_scorer,
            "pieces_per_second": num_pieces / t_scorer,
        },
        "environment": environment(),
    }


# --------------------------------------------------------------------------------------------
# (b) the hardness maths
# --------------------------------------------------------------------------------------------


def random_batch(samples: int, group_size: int, dim: int, max_pieces: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random inputs shaped like a real step: ragged pieces (3..max_pieces), groups of G."""
    gen = torch.Generator().manual_seed(seed)

    def pieces() -> tuple[torch.Tensor, torch.Tensor]:
        counts = torch.randint(3, max_pieces + 1, (samples, 1), generator=gen)
        mask = torch.arange(max_pieces).unsqueeze(0) < counts
        return torch.randn(samples, max_pieces, dim, generator=gen), mask

    resp_emb, resp_mask = pieces()
    demo_emb, demo_mask = pieces()
    group_ids = torch.arange(samples) // group_size
    rewards = torch.randn(samples, generator=gen)
    demo_rewards = (torch.randn(samples // group_size + 1, generator=gen) + 1.0)[group_ids]
    return dict(
        resp_emb=resp_emb, resp_mask=resp_mask, demo_emb=demo_emb, demo_mask=demo_mask,
        group_ids=group_ids, rewards=rewards, demo_rewards=demo_rewards,
    )  # fmt: skip


def bench_maths(args: argparse.Namespace) -> dict[str, Any]:
    b = random_batch(args.samples, args.group_size, args.dim, args.max_pieces)
    alpha_d = data_hardness(b["resp_emb"], b["resp_mask"], b["demo_emb"], b["demo_mask"], b["group_ids"]).alpha
    steps: dict[str, Callable[[], Any]] = {
        "data_hardness": lambda: data_hardness(b["resp_emb"], b["resp_mask"], b["demo_emb"], b["demo_mask"], b["group_ids"]),
        "model_responsiveness": lambda: model_responsiveness(b["rewards"], b["demo_rewards"], b["group_ids"]),
        "grpo_s_advantages": lambda: grpo_s_advantages(
            b["rewards"], b["group_ids"], alpha_d=alpha_d, demo_rewards=b["demo_rewards"]
        ),
    }
    per_1000 = 1000.0 / args.samples
    out: dict[str, Any] = {
        "samples": args.samples,
        "group_size": args.group_size,
        "max_pieces": args.max_pieces,
        "mean_pieces": float(b["resp_mask"].sum(-1).float().mean()),
        "dim": args.dim,
        "ms_per_1000_samples": {},
    }
    with torch.inference_mode():
        for name, fn in steps.items():
            out["ms_per_1000_samples"][name] = 1000.0 * median_seconds(fn, args.repeats) * per_1000
    out["ms_per_1000_samples"]["total"] = sum(out["ms_per_1000_samples"].values())
    out["environment"] = environment()
    return out


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{'encoder':<48} {'one/call p/s':>12} {'batched p/s':>12} {'ratio':>7} {'scorer p/s':>11}")
    for kind, r in results.get("encoders", {}).items():
        if "skipped" in r:
            print(f"{kind:<48} skipped: {r['skipped'][:70]}")
            continue
        print(
            f"{r['name']:<48} {r['baseline_one_call_per_piece']['pieces_per_second']:>12.1f} "
            f"{r['batched']['pieces_per_second']:>12.1f} {r['batched_over_baseline']:>6.1f}x "
            f"{r['scorer_data_hardness']['pieces_per_second']:>11.1f}"
        )
    maths = results.get("maths")
    if maths:
        print(f"\nhardness maths, ms per 1,000 samples (G={maths['group_size']}, D={maths['dim']}, "
              f"mean pieces {maths['mean_pieces']:.1f}):")  # fmt: skip
        for name, ms in maths["ms_per_1000_samples"].items():
            print(f"  {name:<24} {ms:>9.2f}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pieces", type=int, default=256, help="pieces per batched encode (default 256)")
    p.add_argument("--baseline-pieces", type=int, default=64, help="pieces encoded one call each (default 64)")
    p.add_argument("--samples", type=int, default=1000, help="samples for the maths part (default 1000)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported (default 5)")
    p.add_argument("--scorer-samples", type=int, default=98, help="seed replies scored by the scorer row (max 98)")
    p.add_argument("--batch-size", type=int, default=64, help="encoder batch, in pieces (default 64)")
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--max-pieces", type=int, default=9, help="pieces per response are 3..max (mean 6 at 9)")
    p.add_argument("--dim", type=int, default=384, help="embedding size for the maths part (MiniLM: 384)")
    p.add_argument("--encoders", default="minilm,open_clip", help="comma list of: minilm, open_clip")
    p.add_argument("--open-clip-model", default="ViT-B-32")
    p.add_argument("--open-clip-pretrained", default="none",
                   help="open_clip tag, or 'none' for random weights (same compute, no download)")  # fmt: skip
    p.add_argument("--parts", default="encoders,maths", help="comma list of: encoders, maths")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    p.add_argument("--merge", action="store_true", help="update --output with this run's results only")
    args = p.parse_args(argv)
    args.baseline_pieces = min(args.baseline_pieces, args.pieces)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    parts = set(args.parts.split(","))
    results: dict[str, Any] = {
        "benchmark": "hardness",
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        # Paths relative to the working directory: results should not record this machine.
        "args": {k: (os.path.relpath(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    if "encoders" in parts:
        results["encoders"] = {kind: bench_encoder(kind, args) for kind in args.encoders.split(",")}
    if "maths" in parts:
        results["maths"] = bench_maths(args)

    if args.merge and args.output.is_file():
        merged = json.loads(args.output.read_text())
        for kind, r in results.get("encoders", {}).items():
            if "skipped" not in r or kind not in merged.get("encoders", {}):
                merged.setdefault("encoders", {})[kind] = r  # never replace a measurement by a skip
        if "maths" in results:
            merged["maths"] = results["maths"]
        merged.setdefault("merged_runs", []).append({"created": results["created"], "args": results["args"]})
        results = merged
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\nwrote {args.output}")
    return results


if __name__ == "__main__":
    main()
