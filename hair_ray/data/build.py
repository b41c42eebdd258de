"""Stage A, top to bottom: sources -> categories -> de-duplicate -> balance -> demonstrations
-> quality filter -> stratified split -> one atomic write of the dataset folder and its report.

    rows      = load every source (mapped to the seven categories; bad rows counted)
    rows      = deduplicate(rows)
    pools     = each category's rows in a seeded order; target = smallest category (or the cap);
                with data.benign_prompts, the benign category's own target, the seven's without it
    accepted  = ask the teacher, category by category in turn, until each has its target of demos
                (each reply parsed and filtered; rejects counted; generated replies appended to
                DIR/.partial so that a re-run after a crash skips them)
    final     = the smallest accepted count: every category is cut to it (benign to its own)
    splits    = stratified train / val / test; write train.jsonl, val.jsonl, test.jsonl,
                report.json into a temporary folder and rename it over DIR
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from hair_ray.atomic import atomic_dir, file_lock
from hair_ray.categories import CATEGORIES, Category, with_benign
from hair_ray.config import DataConfig
from hair_ray.data.balance import (
    SPLITS,
    BalanceError,
    category_pools,
    check_minimum,
    choose_target,
    deduplicate,
    split_by_category,
)
from hair_ray.data.cod import CodDemo, make_record, validate_raw
from hair_ray.data.sources import DropLog, PromptRow, SourceError, SourceResult, load_source
from hair_ray.data.teachers import (
    ReplyTeacher,
    TeacherReply,
    TeacherRequest,
    fingerprint,
    import_candidates,
    load_import_file,
    make_teacher,
    request_seed,
)
from hair_ray.fingerprint import json_fingerprint

log = logging.getLogger("hair_ray.data")

REPORT_FORMAT = "hair_ray.data/1"
OUTPUT_FILES = ("train.jsonl", "val.jsonl", "test.jsonl", "report.json")
PARTIAL_DIR = ".partial"

Progress = Callable[[str, int, int], None]  # (stage, done, total)


class BuildError(ValueError):
    """The build cannot produce a dataset; the message says why and what to change."""


@dataclass
class BuildResult:
    dataset_dir: Path
    report: dict[str, Any]


def data_config_hash(cfg: DataConfig) -> str:
    """Hash of the data section only: a policy or trainer change keeps the dataset's hash."""
    return json_fingerprint(cfg.model_dump(mode="json"))


def row_key(row: PromptRow) -> str:
    """Stable across runs, and new whenever the prompt or its category changes."""
    digest = hashlib.sha256(f"{row.category.value}\n{row.prompt}".encode()).hexdigest()[:12]
    return f"{row.source}/{row.id}/{digest}"


# --------------------------------------------------------------------------- the build


def build_dataset(cfg: DataConfig, *, progress: Progress | None = None) -> BuildResult:
    """Build the dataset described by `cfg` into `cfg.dataset_dir`; return its report."""
    out = Path(cfg.dataset_dir)
    _check_output_dir(out)
    report_progress = progress or (lambda stage, done, total: None)
    with file_lock(out.parent / f".{out.name}.build.lock"):
        # 1. sources
        loaded: list[SourceResult] = []
        for index, source in enumerate(cfg.sources):
            report_progress("sources", index, len(cfg.sources))
            try:
                loaded.append(load_source(source, data_root=cfg.data_root, max_prompt_chars=cfg.max_prompt_chars))
            except SourceError as err:
                raise BuildError(f"data.sources.{index} ({source.kind}): {err}") from None
        report_progress("sources", len(cfg.sources), len(cfg.sources))
        rows = [row for result in loaded for row in result.rows]
        _check_unique_ids(rows)
        # 2. de-duplicate, 3. order each category and pick the target count
        rows, duplicates = deduplicate(rows)
        _check_teacher_needed(cfg, loaded)
        categories = with_benign(cfg.has_benign)
        pools = category_pools(rows, cfg.seed, categories)
        available = {c: len(pools[c]) for c in categories}
        # The categories held to one count: all of them, or the seven when benign has its own.
        balanced = categories if cfg.benign_prompts is None else CATEGORIES
        try:
            target = choose_target(available, cfg.prompts_per_category, cfg.min_prompts_per_category, balanced)
        except BalanceError as err:
            raise BuildError(str(err)) from None
        targets = dict.fromkeys(categories, target)
        if cfg.benign_prompts is not None:
            targets[Category.BENIGN] = min(cfg.benign_prompts, available[Category.BENIGN])
        # 4. demonstrations, until every category has its target of them (or runs out of prompts)
        collector = DemoCollector(cfg, pools, targets, out / PARTIAL_DIR, report_progress)
        accepted = collector.run()
        # 5. equal counts, 6. split, 7. write
        counts = {c: len(accepted[c]) for c in categories}
        try:
            check_minimum(counts, cfg.min_prompts_per_category, what="accepted demonstrations", categories=categories)
        except BalanceError as err:
            raise BuildError(f"{err} Teacher rejects: {dict(collector.stats.rejects.most_common())}") from None
        final = min(counts[c] for c in balanced)
        used = {c: final if c in balanced else counts[c] for c in categories}
        chosen = {c: accepted[c][: used[c]] for c in categories}
        splits = split_by_category(chosen, cfg.split, cfg.seed)
        report = make_report(cfg, loaded, duplicates, available, target, used, collector, splits)
        report_progress("write", 0, 1)
        write_dataset(out, splits, report)
        report_progress("write", 1, 1)
    log.info("wrote %s: %d records per category", out, final)
    return BuildResult(out, report)


def _check_output_dir(out: Path) -> None:
    """The folder is replaced as a whole: refuse one that holds anything but a dataset."""
    if out.exists() and not out.is_dir():
        raise BuildError(f"data.dataset_dir {out} exists and is not a folder")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in (*OUTPUT_FILES, PARTIAL_DIR))
        if foreign:
            raise BuildError(
                f"data.dataset_dir {out} holds other files ({', '.join(foreign[:5])}); the build replaces "
                "the whole folder, so point it at a new or dataset-only folder"
            )


def _check_unique_ids(rows: list[PromptRow]) -> None:
    seen: dict[str, str] = {}
    for row in rows:
        if row.id in seen:
            raise BuildError(
                f"record id {row.id!r} comes twice ({seen[row.id]} and {row.where}); give the sources distinct `name`s or ids"
            )
        seen[row.id] = row.where


def _check_teacher_needed(cfg: DataConfig, loaded: list[SourceResult]) -> None:
    if cfg.teacher.backend != "none":
        return
    for result in loaded:
        missing = [row for row in result.rows if row.demo is None]
        if missing:
            has_replies = any(row.responses for row in missing)
            hint = " (it has existing replies: backend 'import' wraps those)" if has_replies else ""
            raise BuildError(
                f"source {result.name!r} ({result.location}) has prompts without demonstrations "
                f"(e.g. {missing[0].where}); set data.teacher.backend to 'vllm', 'http' or 'import'{hint}"
            )


# --------------------------------------------------------------------------- demonstrations


@dataclass
class TeacherStats:
    requests: int = 0  # prompts given to the teacher in this run
    resumed: int = 0  # prompts answered from DIR/.partial
    accepted_by: Counter = field(default_factory=Counter)
    rejects: Counter = field(default_factory=Counter)  # reason -> rejected attempts
    rejects_by_teacher: dict[str, Counter] = field(default_factory=dict)
    rejected_prompts: int = 0  # prompts left without any demonstration
    asked: Counter = field(default_factory=Counter)  # category -> prompts given to the teacher
    rejected: Counter = field(default_factory=Counter)  # category -> prompts without a demo
    over_target: int = 0  # accepted after their category was already full (in flight)

    def reject(self, teacher: str, reasons: list[list[str]]) -> None:
        for attempt in reasons:
            for reason in attempt:
                self.rejects[reason] += 1
                self.rejects_by_teacher.setdefault(teacher, Counter())[reason] += 1


def judge(reply: TeacherReply, row: PromptRow) -> tuple[dict[str, Any] | None, list[list[str]]]:
    """The first attempt that parses and passes the filter, as a record; the failed ones' reasons."""
    failed: list[list[str]] = []
    for attempt in reply.attempts:
        if attempt.text is None:
            failed.append([attempt.error or "no_output"])
            continue
        demo, reasons = validate_raw(attempt.text, refusal=must_refuse(row.category.value))
        if demo is not None and not reasons:
            record = make_record(id=row.id, source=row.source, category=row.category, prompt=row.prompt, demo=demo)
            return record, failed
        failed.append(list(reasons))
    return None, failed


# Failures of the transport, not of the teacher's text: a re-run asks those prompts again.
TRANSIENT_REASONS = frozenset({"connection_error", "timeout", "http_429", "http_500", "http_502", "http_503", "http_504"})


def _transient(failed: list[list[str]]) -> bool:
    return bool(failed) and all(set(reasons) <= TRANSIENT_REASONS for reasons in failed)


def must_refuse(category: str) -> bool:
    """A demonstration of the seven harm categories refuses; a benign one answers."""
    return category != Category.BENIGN.value


def _validate(text: str, category: str) -> list[str]:
    return validate_raw(text, refusal=must_refuse(category))[1]


def interleave(pools: dict[Category, list[PromptRow]]) -> Iterator[PromptRow]:
    """Round-robin over the categories, so that all of them fill at the same pace."""
    longest = max((len(pool) for pool in pools.values()), default=0)
    for index in range(longest):
        for category in pools:
            if index < len(pools[category]):
                yield pools[category][index]


class PartialLog:
    """Append-only JSONL of generated replies, one line per prompt, flushed line by line.

    A crash leaves at worst one torn last line, which `load` skips.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: TextIO | None = None
        self._since_sync = 0

    def load(self) -> dict[str, dict[str, Any]]:
        entries: dict[str, dict[str, Any]] = {}
        if not self.path.is_file():
            return entries
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                    entries[entry["key"]] = entry
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a torn last line from a crash
        return entries

    def append(self, entry: dict[str, Any]) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open across appends, closed by close()
        self._handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._handle.flush()
        self._since_sync += 1
        if self._since_sync >= 64:
            os.fsync(self._handle.fileno())
            self._since_sync = 0

    def close(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None


class DemoCollector:
    """Fills every category with its target of accepted demonstrations, in pool order."""

    def __init__(
        self,
        cfg: DataConfig,
        pools: dict[Category, list[PromptRow]],
        targets: dict[Category, int],
        partial_dir: Path,
        progress: Progress,
    ) -> None:
        self.cfg = cfg
        self.pools = pools
        self.targets = targets
        self.wanted = sum(targets.values())
        self.progress = progress
        self.stats = TeacherStats()
        self.categories = tuple(pools)
        self.rows = {row_key(row): row for pool in pools.values() for row in pool}
        self.accepted: dict[Category, dict[str, dict[str, Any]]] = {c: {} for c in self.categories}
        teacher_cfg = cfg.teacher
        self.fingerprint = fingerprint(teacher_cfg, cfg.seed) if teacher_cfg.backend in ("vllm", "http") else None
        # The import teacher (also `none`, which offers only the sources' own demonstrations).
        extra = {}
        if teacher_cfg.import_path and "import" in (teacher_cfg.backend, teacher_cfg.fallback):
            path = Path(teacher_cfg.import_path).expanduser()
            if not path.is_absolute() and cfg.data_root:
                path = Path(cfg.data_root).expanduser() / path
            try:
                extra = load_import_file(path)
            except SourceError as err:
                raise BuildError(str(err)) from None
        models = teacher_cfg.import_models
        if teacher_cfg.backend == "none":

            def source_demo(key: str) -> list[str]:
                demo = self.rows[key].demo
                return [demo.text] if demo else []

            self.replies = ReplyTeacher("source", source_demo)
        else:
            self.replies = ReplyTeacher("import", lambda key: import_candidates(self.rows[key], models, extra))
        self.partial = PartialLog(partial_dir / f"teacher-{teacher_cfg.backend}-{self.fingerprint}.jsonl")

    def full(self, category: Category) -> bool:
        return len(self.accepted[category]) >= self.targets[category]

    def all_full(self) -> bool:
        return all(self.full(c) for c in self.categories)

    def _accept(self, row: PromptRow, record: dict[str, Any] | None, teacher: str) -> None:
        if record is None:
            self.stats.rejected_prompts += 1
            self.stats.rejected[row.category] += 1
        elif self.full(row.category):
            self.stats.over_target += 1
        else:
            self.accepted[row.category][row_key(row)] = record
            self.stats.accepted_by[teacher] += 1
        self.progress("demonstrations", sum(len(a) for a in self.accepted.values()), self.wanted)

    def _fallback(self, row: PromptRow) -> None:
        """Existing replies for a prompt the model teacher failed on (teacher.fallback: import)."""
        if self.cfg.teacher.fallback != "import":
            self._accept(row, None, "")
            return
        request = self._request(row)
        reply = next(self.replies.run([request], _validate))
        record, failed = judge(reply, row)
        self.stats.reject(self.replies.name, failed)
        self._accept(row, record, self.replies.name)

    def _request(self, row: PromptRow) -> TeacherRequest:
        key = row_key(row)
        return TeacherRequest(key, row.prompt, row.category.value, request_seed(self.cfg.seed, key))

    def run(self) -> dict[Category, list[dict[str, Any]]]:
        self.progress("demonstrations", 0, self.wanted)
        if self.fingerprint is None:
            self._run_teacher(self.replies, cached={})
        else:
            cached = self.partial.load()
            teacher = make_teacher(self.cfg.teacher, seed=self.cfg.seed)
            try:
                self._run_teacher(teacher, cached)
            finally:
                self.partial.close()
                teacher.close()
        # Pool order, not arrival order: which records are kept does not depend on timing.
        return {
            c: [self.accepted[c][k] for k in (row_key(r) for r in self.pools[c]) if k in self.accepted[c]]
            for c in self.categories
        }

    def _run_teacher(self, teacher: Any, cached: dict[str, dict[str, Any]]) -> None:
        resumable = self.fingerprint is not None
        # Prompts answered by an earlier, interrupted run: no new request.
        for row in interleave(self.pools):
            entry = cached.get(row_key(row))
            if entry is None or self.full(row.category):
                continue
            self.stats.resumed += 1
            self.stats.asked[row.category] += 1
            self.stats.reject(teacher.name, entry.get("rejects", []))
            if entry.get("accepted"):
                demo = CodDemo(tuple(entry["accepted"]["drafts"]), entry["accepted"]["reply"])
                restored = make_record(id=row.id, source=row.source, category=row.category, prompt=row.prompt, demo=demo)
                self._accept(row, restored, teacher.name)
            else:
                self._fallback(row)

        def requests() -> Iterator[TeacherRequest]:
            for row in interleave(self.pools):
                # Checked lazily: a category that is full gets no more requests.
                if row_key(row) not in cached and not self.full(row.category):
                    self.stats.requests += 1
                    self.stats.asked[row.category] += 1
                    yield self._request(row)

        if self.all_full():
            return
        replies = teacher.run(requests(), _validate)
        try:
            for reply in replies:
                row = self.rows[reply.key]
                record, failed = judge(reply, row)
                if resumable and (record is not None or not _transient(failed)):
                    accepted = {"drafts": record["drafts"], "reply": record["reply"]} if record else None
                    self.partial.append({"key": reply.key, "accepted": accepted, "rejects": failed})
                self.stats.reject(teacher.name, failed)
                if record is None and resumable:
                    self._fallback(row)
                else:
                    self._accept(row, record, teacher.name)
                if self.all_full():
                    break
        finally:
            close = getattr(replies, "close", None)
            if close is not None:
                close()


# --------------------------------------------------------------------------- report and files


def _per_category(counts: dict[Category, int] | Counter, categories: tuple[Category, ...]) -> dict[str, int]:
    return {c.value: int(counts.get(c, 0)) for c in categories}


def make_report(
    cfg: DataConfig,
    loaded: list[SourceResult],
    duplicates: DropLog,
    available: dict[Category, int],
    target: int,
    used: dict[Category, int],
    collector: DemoCollector,
    splits: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    dropped = DropLog()
    sources = []
    mapped: Counter = Counter()
    for result in loaded:
        per_category = Counter(row.category for row in result.rows)
        mapped.update(per_category)
        dropped.merge(result.drops)
        sources.append(
            {
                "name": result.name,
                "kind": result.kind,
                "location": result.location,
                "rows_read": result.rows_read,
                "rows_kept": len(result.rows),
                "per_category": _per_category(per_category, collector.categories),
                "dropped": dict(result.drops.counts.most_common()),
            }
        )
    dropped.merge(duplicates)
    stats = collector.stats
    categories = {
        c.value: {
            "mapped": mapped[c],
            "available": available[c],  # after de-duplication
            "asked": stats.asked[c],
            "accepted": len(collector.accepted[c]),
            "rejected": stats.rejected[c],
            "used": used[c],
        }
        for c in collector.categories
    }
    return {
        "format": REPORT_FORMAT,
        "seed": cfg.seed,
        "config_hash": data_config_hash(cfg),
        "records": sum(used.values()),
        "per_category": min(used[c] for c in CATEGORIES),  # the seven's; benign's: categories.benign.used
        "target_per_category": target,
        "categories": categories,
        "splits": {
            name: {
                "total": len(records),
                "per_category": _per_category(Counter(Category(r["category"]) for r in records), collector.categories),
            }
            for name, records in splits.items()
        },
        "sources": sources,
        "dropped": dict(dropped.counts.most_common()),
        "drop_examples": dropped.examples,
        "teacher": {
            "backend": cfg.teacher.backend,
            "fallback": cfg.teacher.fallback,
            "model": cfg.teacher.model.name_or_path if cfg.teacher.model else None,
            "fingerprint": collector.fingerprint,
            "requests": stats.requests,
            "resumed": stats.resumed,
            "accepted_by": dict(stats.accepted_by),
            "rejected_prompts": stats.rejected_prompts,
            "over_target": stats.over_target,
            "rejects_by_teacher": {name: dict(c.most_common()) for name, c in stats.rejects_by_teacher.items()},
        },
        "rejects": dict(stats.rejects.most_common()),
        "config": cfg.model_dump(mode="json"),
    }


def _jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def write_dataset(out: Path, splits: dict[str, list[dict[str, Any]]], report: dict[str, Any]) -> None:
    """All files land together: a crash leaves the previous folder (or none), never half a split."""
    with atomic_dir(out) as staging:
        files = {}
        for name in SPLITS:
            text = _jsonl(splits[name])
            (staging / f"{name}.jsonl").write_text(text, encoding="utf-8")
            files[f"{name}.jsonl"] = {"records": len(splits[name]), "sha256": hashlib.sha256(text.encode()).hexdigest()}
        report["files"] = files
        (staging / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        # Keep the teacher's partial results for the next build (hard links: no copy, and the
        # originals stay put until the rename succeeds).
        partial = out / PARTIAL_DIR
        if partial.is_dir():
            shutil.copytree(partial, staging / PARTIAL_DIR, copy_function=_link_or_copy)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def read_report(dataset_dir: str | Path) -> dict[str, Any]:
    path = Path(dataset_dir) / "report.json"
    if not path.is_file():
        raise BuildError(f"{path} not found: is {dataset_dir} a dataset folder written by `hair-ray data build`?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise BuildError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
