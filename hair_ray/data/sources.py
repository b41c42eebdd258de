"""Stage-A sources: read harmful prompts (and any existing replies) and map them to a category.

Every loader reads a local file or, when the file is not there, the source's Hugging Face id,
and returns `PromptRow`s plus a `DropLog`. A row that cannot be used (empty or over-long prompt,
a label that maps to no category, a broken JSON line) is dropped and counted by reason, with a
few `file:line column` examples; it is never given a guessed category. A problem with the whole
file (missing, a required column absent, not the documented format) raises `SourceError`,
whose message names the file and what was expected.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from hair_ray.categories import SAFETY_PROMPTS_KEYS, Category, parse_category
from hair_ray.config import SourceConfig
from hair_ray.data import do_not_answer as dna
from hair_ray.data.cod import CodDemo
from hair_ray.data.seed_data import load_seed_records
from hair_ray.data.subset import evenly_spaced

log = logging.getLogger("hair_ray.data")

MAX_EXAMPLES_PER_REASON = 3
SAFETY_PROMPTS_FILE = "typical_safety_scenarios.json"
# csv refuses fields over 128 KiB by default; a long prompt should be a counted drop, not a crash.
csv.field_size_limit(64 * 2**20)


class SourceError(ValueError):
    """A source cannot be read at all; the message names the file and what was expected."""


class Response(NamedTuple):
    """An existing reply to a prompt, for the import teacher.

    `model` is None for a source's own single reply (Safety-Prompts, a table's reply column);
    `harmful` is the human label where the dataset has one (Do-Not-Answer's `<model>_harmful`).
    """

    model: str | None
    text: str
    harmful: bool | None


@dataclass(frozen=True)
class PromptRow:
    id: str
    source: str
    category: Category
    prompt: str
    where: str  # "file:line" or "hub-id[split] row i", for messages
    demo: CodDemo | None = None  # a ready demonstration (the seed set)
    responses: tuple[Response, ...] = ()


@dataclass
class DropLog:
    """Dropped rows counted by reason, with the first few locations of each."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, where: str, count: int = 1) -> None:
        self.counts[reason] += count
        shown = self.examples.setdefault(reason, [])
        if len(shown) < MAX_EXAMPLES_PER_REASON:
            shown.append(where)

    def merge(self, other: DropLog) -> None:
        for reason, count in other.counts.items():
            self.counts[reason] += count
            for where in other.examples.get(reason, []):
                shown = self.examples.setdefault(reason, [])
                if len(shown) < MAX_EXAMPLES_PER_REASON:
                    shown.append(where)

    def summary(self) -> str:
        return ", ".join(f"{reason} ×{n} (e.g. {self.examples[reason][0]})" for reason, n in self.counts.most_common())


@dataclass
class SourceResult:
    name: str
    kind: str
    location: str  # the file read, or "hub:<id>"
    rows_read: int
    rows: list[PromptRow]
    drops: DropLog


# --------------------------------------------------------------------------- entry point


def load_source(cfg: SourceConfig, *, data_root: str | None = None, max_prompt_chars: int = 4000) -> SourceResult:
    """Read one configured source; raise SourceError when it yields no usable row at all."""
    loaders = {
        "seed": _load_seed,
        "do_not_answer": _load_do_not_answer,
        "safety_prompts": _load_safety_prompts,
        "table": _load_table,
    }
    reader = _Reader(cfg, data_root, max_prompt_chars)
    loaders[cfg.kind](reader)
    result = SourceResult(
        name=cfg.source_name,
        kind=cfg.kind,
        location=reader.location,
        rows_read=reader.rows_read,
        rows=reader.rows,
        drops=reader.drops,
    )
    if not result.rows:
        why = f"; dropped: {result.drops.summary()}" if result.drops.counts else ""
        raise SourceError(f"source {result.name!r} ({result.location}) has no usable rows{why}")
    if result.drops.counts:
        log.warning("source %s (%s): dropped %s", result.name, result.location, result.drops.summary())
    return result


class _Reader:
    """Shared state of one source load: where it reads, the rows kept, the rows dropped."""

    def __init__(self, cfg: SourceConfig, data_root: str | None, max_prompt_chars: int) -> None:
        self.cfg = cfg
        self.data_root = data_root
        self.max_prompt_chars = max_prompt_chars
        self.only = {parse_category(c) for c in cfg.only_categories} if cfg.only_categories else None
        self.location = ""
        self.rows_read = 0
        self.rows: list[PromptRow] = []
        self.drops = DropLog()

    def local_file(self) -> Path | None:
        """The configured file, or None to read the hub id instead (warned when a path was set)."""
        if self.cfg.path is None:
            return None
        path = Path(self.cfg.path).expanduser()
        if not path.is_absolute() and self.data_root:
            path = Path(self.data_root).expanduser() / path
        if path.is_file():
            self.location = str(path)
            return path
        hub = self.cfg.resolved_hf_id
        if hub is None:
            raise SourceError(f"source {self.cfg.source_name!r}: file {path} not found")
        log.warning("source %s: %s not found; reading the hub dataset %s", self.cfg.source_name, path, hub)
        return None

    def table(self) -> tuple[list[str] | None, Iterator[tuple[str, dict]], str]:
        """(header or None, rows, where) of the local file, else of the hub dataset."""
        path = self.local_file()
        if path is not None:
            header, rows = read_table(path, self.cfg.format, self.drops)
            return header, rows, str(path)
        header, rows = _hub_rows(self)
        return header, rows, self.location

    def more(self) -> bool:
        """Count one raw row; False once max_rows have been read."""
        if self.cfg.max_rows is not None and self.rows_read >= self.cfg.max_rows:
            return False
        self.rows_read += 1
        return True

    def prompt(self, value: Any, where: str, column: str) -> str | None:
        if value is None or (isinstance(value, float) and value != value):  # None or NaN
            self.drops.add("empty_prompt", f"{where} column {column!r}")
            return None
        if not isinstance(value, str):
            self.drops.add("prompt_not_text", f"{where} column {column!r}: {type(value).__name__}")
            return None
        text = value.strip()
        if not text:
            self.drops.add("empty_prompt", f"{where} column {column!r}")
            return None
        if len(text) > self.max_prompt_chars:
            self.drops.add(
                "prompt_too_long",
                f"{where} column {column!r}: {len(text)} chars > max_prompt_chars {self.max_prompt_chars}",
            )
            return None
        return text

    def keep(self, row: PromptRow) -> None:
        if self.only is not None and row.category not in self.only:
            self.drops.add("category_not_selected", f"{row.where}: {row.category.value}")
            return
        self.rows.append(row)


# --------------------------------------------------------------------------- file readers


def read_table(path: Path, fmt: str, drops: DropLog) -> tuple[list[str] | None, Iterator[tuple[str, dict]]]:
    """(CSV header or None, iterator of (where, row)). Broken JSON lines are counted drops."""
    if fmt == "auto":
        suffix = path.suffix.lower()
        fmt = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}.get(suffix, "")
        if not fmt:
            raise SourceError(f"{path}: cannot tell the format from the extension {suffix!r}; set `format`")
    if fmt == "csv":
        return _read_csv(path, drops)
    if fmt == "jsonl":
        return None, _read_jsonl(path, drops)
    return None, _read_json_list(path)


def _read_csv(path: Path, drops: DropLog) -> tuple[list[str], Iterator[tuple[str, dict]]]:
    handle = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 - the returned rows iterator closes it
    reader = csv.DictReader(handle)
    try:
        header = list(reader.fieldnames or [])
    except (csv.Error, UnicodeDecodeError) as err:
        handle.close()
        raise SourceError(f"{path}: cannot read the CSV header: {err}") from None
    if not header:
        handle.close()
        raise SourceError(f"{path}: empty file (no CSV header)")

    def rows() -> Iterator[tuple[str, dict]]:
        with handle:
            start = reader.line_num + 1
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except (csv.Error, UnicodeDecodeError) as err:
                    raise SourceError(f"{path}:{reader.line_num}: unreadable CSV: {err}") from None
                where = f"{path}:{start}"
                start = reader.line_num + 1
                # DictReader files extra fields under None and fills missing ones with None.
                if None in row or any(value is None for value in row.values()):
                    got = len(row) - (None in row) + len(row.get(None) or ()) - sum(v is None for v in row.values())
                    drops.add("malformed_row", f"{where}: expected {len(header)} fields, got {got}")
                    continue
                yield where, row

    return header, rows()


def _read_jsonl(path: Path, drops: DropLog) -> Iterator[tuple[str, dict]]:
    with open(path, encoding="utf-8-sig") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                drops.add("invalid_json", f"{where}: {err.msg} at column {err.colno}")
                continue
            if not isinstance(row, dict):
                drops.add("invalid_json", f"{where}: a line must be a JSON object, got {type(row).__name__}")
                continue
            yield where, row


def _read_json_list(path: Path) -> Iterator[tuple[str, dict]]:
    data = _load_json(path)
    if not isinstance(data, list):
        raise SourceError(f"{path}: expected a JSON list of objects, got {type(data).__name__}")
    for index, row in enumerate(data):
        yield f"{path}: item {index}", row if isinstance(row, dict) else {"__invalid__": row}


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise SourceError(f"{path}:{err.lineno}: invalid JSON at column {err.colno}: {err.msg}") from None


def require_columns(where: str, have: list[str], need: list[str]) -> None:
    missing = [name for name in need if name not in have]
    if missing:
        names = ", ".join(repr(m) for m in missing)
        raise SourceError(f"{where}: missing column {names}; the columns are: {', '.join(have)}")


def load_hub(hf_id: str, **kwargs: Any):
    """`datasets.load_dataset` with the failure worded for the person running the build."""
    import datasets

    try:
        return datasets.load_dataset(hf_id, **kwargs)
    except Exception as err:  # offline, unknown id, gated, network: all end the same way
        raise SourceError(
            f"cannot load the Hugging Face dataset {hf_id!r} ({type(err).__name__}: {err}); offline runs need a local `path`"
        ) from None


def _hub_rows(reader: _Reader, **kwargs: Any) -> tuple[list[str], Iterator[tuple[str, dict]]]:
    hf_id = reader.cfg.resolved_hf_id
    if hf_id is None:
        raise SourceError(f"source {reader.cfg.source_name!r}: set `path` or `hf_id`")
    split = reader.cfg.hf_split
    dataset = load_hub(hf_id, split=split, **kwargs)
    reader.location = f"hub:{hf_id}"
    where = f"{hf_id}[{split}]"
    return list(dataset.column_names), ((f"{where} row {i}", row) for i, row in enumerate(dataset))


# --------------------------------------------------------------------------- seed


def _load_seed(reader: _Reader) -> None:
    path = reader.local_file()
    try:
        records = load_seed_records(path)
    except (ValueError, OSError) as err:
        raise SourceError(str(err)) from None
    reader.location = str(path) if path else "embedded seed (hair_ray/data/seed/prompts.jsonl)"
    name = reader.cfg.source_name
    for index, record in enumerate(records, 1):
        if not reader.more():
            break
        where = f"{reader.location}:{index}"
        prompt = reader.prompt(record["prompt"], where, "prompt")
        if prompt is None:
            continue
        try:
            category = parse_category(str(record["category"]))
        except ValueError:
            reader.drops.add("unknown_category_label", f"{where} field 'category': {record['category']!r}")
            continue
        demo = CodDemo(drafts=tuple(record["drafts"]), reply=record["reply"])
        reader.keep(PromptRow(str(record["id"]), name, category, prompt, where, demo=demo))


# --------------------------------------------------------------------------- Do-Not-Answer


def parse_harmful(value: Any) -> bool:
    """Do-Not-Answer's 0/1 label; anything else counts as harmful (never trust a broken label)."""
    return str(value).strip() not in ("0", "0.0")


def _load_do_not_answer(reader: _Reader) -> None:
    cfg = reader.cfg
    prompt_column = cfg.prompt_column or "question"
    header, rows, where = reader.table()
    if header is None:
        header = []
        rows = _peek_columns(rows, header)
    require_columns(where, header, ["types_of_harm", "specific_harms", prompt_column])
    # data_en.csv (and the hub copy) carry six models' replies with a human harmfulness label.
    models = [c.removesuffix("_response") for c in header if c.endswith("_response") and f"{c[:-9]}_harmful" in header]
    for index, (row_where, row) in enumerate(rows):
        if not reader.more():
            break
        prompt = reader.prompt(row.get(prompt_column), row_where, prompt_column)
        if prompt is None:
            continue
        match = dna.lookup(str(row.get("types_of_harm") or ""), str(row.get("specific_harms") or ""))
        if isinstance(match, dna.Unmapped):
            reader.drops.add(match.reason, f"{row_where}: {match.detail}")
            continue
        if cfg.mapping_fit == "good" and match.fit == "approx":
            reader.drops.add("approx_fit_excluded", f"{row_where}: {match.specific_harm}")
            continue
        responses = tuple(
            Response(m, str(row[f"{m}_response"]), parse_harmful(row.get(f"{m}_harmful")))
            for m in models
            if isinstance(row.get(f"{m}_response"), str) and row[f"{m}_response"].strip()
        )
        row_id = row.get("id")
        row_id = index if row_id is None or str(row_id).strip() == "" else str(row_id).strip()
        reader.keep(PromptRow(f"dna-{row_id}", cfg.source_name, match.category, prompt, row_where, responses=responses))


def _peek_columns(rows: Iterator[tuple[str, dict]], header: list[str]) -> Iterator[tuple[str, dict]]:
    """JSON rows have no header: take the first row's keys as the columns."""
    first = next(rows, None)
    if first is None:
        return iter(())
    header.extend(first[1].keys())

    def chained() -> Iterator[tuple[str, dict]]:
        yield first
        yield from rows

    return chained()


# --------------------------------------------------------------------------- Safety-Prompts


def _load_safety_prompts(reader: _Reader) -> None:
    """typical_safety_scenarios.json: {scenario key: [{"prompt", "response", "type"}, ...]}."""
    path = reader.local_file()
    if path is not None:
        data = _load_json(path)
        if not isinstance(data, dict):
            raise SourceError(f"{path}: expected a JSON object keyed by scenario (e.g. 'Insult'), got {type(data).__name__}")
        scenarios = {key: (f"{path}: {key}", value) for key, value in data.items()}
    else:
        hf_id = reader.cfg.resolved_hf_id
        assert hf_id is not None  # kind safety_prompts always has one (DEFAULT_HF_IDS)
        files = reader.cfg.hf_data_files or SAFETY_PROMPTS_FILE
        reader.location = f"hub:{hf_id}/{files}"
        scenarios = {
            key: (f"{hf_id}/{files}: {key}", load_hub(hf_id, data_files=files, field=key, split=reader.cfg.hf_split))
            for key in SAFETY_PROMPTS_KEYS
        }
    prompt_column = reader.cfg.prompt_column or "prompt"
    for key, (where, items) in scenarios.items():
        if not isinstance(items, list) and not hasattr(items, "column_names"):
            raise SourceError(f"{where}: expected a list of rows, got {type(items).__name__}")
        category = SAFETY_PROMPTS_KEYS.get(key)
        if category is None:  # e.g. the instruction-attack scenarios: not one of the seven
            reader.drops.add("unmapped_scenario", f"{where} ({len(items)} rows)", count=len(items))
            continue
        for index, item in enumerate(items):
            if not reader.more():
                return
            item_where = f"{where}[{index}]"
            if not isinstance(item, dict):
                reader.drops.add("malformed_row", f"{item_where}: not an object")
                continue
            prompt = reader.prompt(item.get(prompt_column), item_where, prompt_column)
            if prompt is None:
                continue
            reply = item.get("response")
            responses = (Response(None, reply, None),) if isinstance(reply, str) and reply.strip() else ()
            row_id = f"sp-{category.value}-{index}"
            reader.keep(PromptRow(row_id, reader.cfg.source_name, category, prompt, item_where, responses=responses))


# --------------------------------------------------------------------------- any table


def _load_table(reader: _Reader) -> None:
    cfg = reader.cfg
    prompt_column = cfg.prompt_column or "prompt"
    rows: Iterable[tuple[str, dict]]  # an iterator; a list where leave_out_evaluated reads it twice
    header, rows, where = reader.table()
    needed = [c for c in (prompt_column, cfg.category_column, cfg.id_column, cfg.response_column) if c] + list(cfg.where)
    if header is not None:  # CSV and hub tables: a missing column is a config error up front
        require_columns(where, header, needed)
    fixed = parse_category(cfg.fixed_category) if cfg.fixed_category else None
    label_map = {_label_key(raw): parse_category(value) for raw, value in cfg.label_map.items()}
    evaluated: set[str] = set()
    if cfg.leave_out_evaluated is not None:
        rows = list(rows)
        listed = [
            row[prompt_column].strip()
            for _, row in rows
            if isinstance(row.get(prompt_column), str) and row[prompt_column].strip()
        ]
        evaluated = set(evenly_spaced(listed, cfg.leave_out_evaluated))
    for index, (row_where, row) in enumerate(rows, 1):
        if not reader.more():
            break
        absent = [c for c in needed if c not in row]
        if absent:  # JSON rows: each line has its own keys
            reader.drops.add("missing_field", f"{row_where}: no field {absent[0]!r}")
            continue
        prompt = reader.prompt(row.get(prompt_column), row_where, prompt_column)
        if prompt is None:
            continue
        if prompt in evaluated:
            reader.drops.add("evaluated_by_stage_d", row_where)
            continue
        unmatched = next((c for c, want in cfg.where.items() if _label_key(row[c]) != _label_key(want)), None)
        if unmatched is not None:
            reader.drops.add("where_unmatched", f"{row_where} column {unmatched!r}: {row[unmatched]!r}")
            continue
        category = fixed or _category_of(row.get(cfg.category_column), label_map)
        if category is None:
            reader.drops.add(
                "unknown_category_label",
                f"{row_where} column {cfg.category_column!r}: {row.get(cfg.category_column)!r}",
            )
            continue
        row_id = str(row[cfg.id_column]).strip() if cfg.id_column else str(index)
        reply = row.get(cfg.response_column) if cfg.response_column else None
        responses = (Response(None, reply, None),) if isinstance(reply, str) and reply.strip() else ()
        row_id = f"{cfg.source_name}-{row_id}"
        reader.keep(PromptRow(row_id, cfg.source_name, category, prompt, row_where, responses=responses))


def _label_key(label: Any) -> str:
    return " ".join(str(label).casefold().split())


def _category_of(label: Any, label_map: dict[str, Category]) -> Category | None:
    if label is None:
        return None
    if label_map:
        return label_map.get(_label_key(label))
    try:
        category = parse_category(str(label))
    except ValueError:
        return None
    # Benign prompts are declared (fixed_category or label_map), never read off a label column:
    # a stray "benign" label in a harm dataset must not add a category the run did not ask for.
    return None if category is Category.BENIGN else category
