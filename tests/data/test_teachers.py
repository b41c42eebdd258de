"""Teachers: import (existing replies), an OpenAI-compatible HTTP endpoint, vLLM on Ray Data.

The HTTP teacher is tested against a small real server written here with http.server (canned
CoD text, garbage, HTTP 500 then success, a slow reply, a dead server) and against a real
`vllm` OpenAI server on the tiny model; the vLLM teacher runs inside a Ray Data actor pool on
CPU. Nothing is mocked: a random tiny model writes garbage, and that garbage must come out as
counted rejects with reasons.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hair_ray.categories import CATEGORIES, Category
from hair_ray.config import TeacherConfig, load_config
from hair_ray.data.build import BuildError, build_dataset
from hair_ray.data.cod import MAX_DRAFT_WORDS, check_quality, parse_cod
from hair_ray.data.sources import PromptRow, Response, SourceError
from hair_ray.data.teachers import (
    DECISION_DRAFT,
    HttpTeacher,
    TeacherRequest,
    TeacherUnavailable,
    derive_drafts,
    import_candidates,
    load_import_file,
    usable_responses,
    wrap_reply,
)

CANNED = (
    "Wants help causing harm\n"
    "Harmful request\n"
    "Could hurt someone\n"
    "Decline, offer safer help\n"
    "####\n"
    "I can't help with that, because it could hurt someone. If you tell me more about the "
    "situation, I can suggest a safer way to handle it instead."
)
SECRET = "sk-test-never-logged-123"


# --------------------------------------------------------------------------- import


def test_derived_drafts_fit_the_template():
    for category in CATEGORIES:
        drafts = derive_drafts("Tell me, right now, how to pick the lock on my neighbour's door", category)
        assert drafts[0] == "Asks Tell me right now"
        assert drafts[1] == category.display_name and drafts[3] == DECISION_DRAFT
        assert all(len(d.split()) <= MAX_DRAFT_WORDS for d in drafts)
    chinese = derive_drafts("如何通过社交媒体获取别人的家庭私密信息？", Category.PRIVACY_PROPERTY)
    assert chinese[0] == "Asks 如何通过社交媒体获取别人的家庭私" and chinese == derive_drafts(
        "如何通过社交媒体获取别人的家庭私密信息？", "privacy_property"
    )
    assert derive_drafts("???", Category.INSULT)[0] == "Asks something harmful"


def test_wrapped_reply_goes_through_the_same_parser_and_filter():
    text = wrap_reply("Tell me a dirty joke.", "insult", "  I'm sorry, but I can't share that kind of joke.  \r\n")
    demo = parse_cod(text)
    assert demo.drafts == derive_drafts("Tell me a dirty joke.", Category.INSULT)
    assert demo.reply == "I'm sorry, but I can't share that kind of joke."
    assert check_quality(demo) == []
    complying = parse_cod(wrap_reply("x", "insult", "Sure! Here is a dirty joke about a farmer and his cow."))
    assert check_quality(complying) == ["reply_not_refusal"]


def test_usable_replies_follow_labels_and_preference():
    responses = [
        Response("ChatGPT", "c", False),
        Response("GPT4", "g", True),  # judged harmful: never imported
        Response("Claude", "l", False),
        Response("vicuna-7b", "v", False),  # not in the preferred list
        Response(None, "own", None),
    ]
    picked = usable_responses(responses, ["GPT4", "Claude", "ChatGPT", "llama2-7b-chat"])
    assert [r.text for r in picked] == ["own", "l", "c"]


def test_import_candidates_and_file(tmp_path):
    path = tmp_path / "replies.csv"
    path.write_text(
        "id,question,GPT4_response,GPT4_harmful,Claude_response,Claude_harmful\n"
        '1,"Tell me a dirty joke.","Sure, here is one.",1,"I won\'t share that, sorry.",0\n'
    )
    extra = load_import_file(path)
    row = PromptRow("r1", "t", Category.INSULT, "tell me a dirty joke", "t:1")
    texts = import_candidates(row, ["GPT4", "Claude"], extra)
    assert len(texts) == 1 and texts[0].endswith("####\nI won't share that, sorry.")
    bad = tmp_path / "bad.csv"
    bad.write_text("question,GPT4_response\nq,r\n")
    with pytest.raises(
        SourceError, match="bad.csv: missing column 'GPT4_harmful'; imported replies need a human harmfulness label"
    ):
        load_import_file(bad)


# --------------------------------------------------------------------------- a real HTTP server


class StubOpenAI:
    """A tiny OpenAI-compatible chat server. Behaviour is chosen by words in the user prompt:
    GARBAGE (unformatted text), FLAKY (HTTP 500 once, then fine), SLOW (answers after 2 s),
    BADJSON (a 200 with a non-JSON body); anything else gets a valid CoD demonstration.
    `down_after` makes it drop every connection after that many answered requests.

    `in_flight` counts a request from the moment its body has been read (the client has sent
    it and waits) until just before the first byte of its response is written (the client
    cannot have its answer yet). That window lies inside the client's own, so `max_in_flight`
    never exceeds the client's real concurrency, however the threads are scheduled.
    `gate_at=n` holds every answer until n requests have been in flight together once (or
    `gate_timeout_s` passed), so a client that can reach n concurrent requests is seen to."""

    def __init__(self, delay_s: float = 0.0, gate_at: int | None = None, gate_timeout_s: float = 30.0) -> None:
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.answered = 0
        self.seen_prompts: list[str] = []
        self.auth_headers: set[str] = set()
        self.in_flight = 0
        self.max_in_flight = 0
        self.gate_at = gate_at
        self.gate_timeout_s = gate_timeout_s
        self.gate = threading.Event()
        self.flaky_failed: set[str] = set()
        self.down_after: int | None = None
        self.refused = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"]
                with stub.lock:
                    stub.auth_headers.add(self.headers.get("Authorization", ""))
                    if stub.down_after is not None and stub.answered >= stub.down_after:
                        self.close_connection = True
                        return  # no response at all: the client sees a dropped connection
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                    if stub.gate_at is not None and stub.in_flight >= stub.gate_at:
                        stub.gate.set()
                self._counted = True
                try:
                    self._answer(prompt)
                finally:
                    self._leave()  # only if _send did not run (an exception)

            def _leave(self) -> None:
                """No longer in flight: called before any byte of the response is written."""
                if getattr(self, "_counted", False):
                    self._counted = False
                    with stub.lock:
                        stub.in_flight -= 1

            def _answer(self, prompt: str) -> None:
                if stub.gate_at is not None:
                    stub.gate.wait(stub.gate_timeout_s)
                time.sleep(stub.delay_s)
                if "FLAKY" in prompt:
                    with stub.lock:
                        first = prompt not in stub.flaky_failed
                        stub.flaky_failed.add(prompt)
                    if first:
                        self._send(500, b'{"error": "overloaded"}')
                        return
                if "UNAUTHORISED" in prompt:
                    with stub.lock:
                        stub.refused += 1
                    self._send(401, b'{"error": "invalid api key"}')
                    return
                if "SLOW" in prompt:
                    time.sleep(2.0)
                if "BADJSON" in prompt:
                    self._send(200, b"<html>gateway</html>")
                    return
                text = "lorem ipsum dolor, no format at all" if "GARBAGE" in prompt else CANNED
                with stub.lock:
                    stub.answered += 1
                    stub.seen_prompts.append(prompt)
                payload = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
                self._send(200, json.dumps(payload).encode())

            def _send(self, code: int, data: bytes) -> None:
                self._leave()  # first: once the reply is on the wire the client may send the next request
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    server = StubOpenAI()
    yield server
    server.close()


def table_source(tmp_path: Path, prompts: dict[Category, list[str]]) -> str:
    path = tmp_path / "prompts.jsonl"
    lines = [json.dumps({"prompt": p, "category": c.value}) for c, ps in prompts.items() for p in ps]
    path.write_text("\n".join(lines) + "\n")
    return f"data.sources=[{{kind: table, name: t, path: '{path}', category_column: category}}]"


def http_config(tmp_path, url: str, *extra: str, name: str = "out"):
    # A roomy timeout: on a busy machine a local answer may take a while, and a spurious
    # timeout would change the counts. Only the SLOW test sets a short one.
    teacher = (
        f"data.teacher={{backend: http, base_url: '{url}', model: {{name_or_path: stub}}, attempts_per_prompt: 2, "
        "max_retries: 1, timeout_s: 30, max_concurrency: 4}"
    )
    return load_config(None, [f"data.dataset_dir={tmp_path / name}", teacher, *extra]).data


def test_http_teacher_canned_garbage_flaky_slow(tmp_path, stub, monkeypatch, caplog):
    monkeypatch.setenv("HAIR_RAY_TEACHER_API_KEY", SECRET)
    prompts = {c: [f"{c.value} CANNED one", f"{c.value} FLAKY two", f"{c.value} GARBAGE three"] for c in CATEGORIES}
    prompts[Category.INSULT].append("insult SLOW four")
    prompts[Category.ETHICS_MORALITY].append("ethics BADJSON five")
    # SLOW answers after 2 s, twice the timeout, so it always times out; any other answer has
    # 1 s (and one retry) to arrive.
    cfg = http_config(tmp_path, stub.url, table_source(tmp_path, prompts), "data.teacher.timeout_s=1.0")
    report = build_dataset(cfg).report
    assert report["per_category"] == 2  # CANNED and FLAKY (500, retried, then fine) pass
    assert report["teacher"]["requests"] == 23 and report["teacher"]["rejected_prompts"] == 9
    # Garbage: two samples per prompt, each unparseable; slow: both attempts time out.
    assert report["rejects"] == {"no_separator": 14, "timeout": 2, "bad_response": 2}
    assert stub.auth_headers == {f"Bearer {SECRET}"}
    written = "".join(p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert SECRET not in written and SECRET not in caplog.text
    partial = next((tmp_path / "out" / ".partial").glob("teacher-http-*.jsonl"))
    # Timeouts are transport failures: not recorded, so a re-run asks again.
    assert len(partial.read_text().splitlines()) == 22


class CountingHttpTeacher(HttpTeacher):
    """The real client, counting its own requests in flight (the whole `_post`: connect, send,
    wait, read)."""

    def __init__(self, cfg: TeacherConfig) -> None:
        super().__init__(cfg)
        self._count_lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0

    def _post(self, body):
        with self._count_lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return super()._post(body)
        finally:
            with self._count_lock:
                self.in_flight -= 1


def test_http_teacher_respects_the_concurrency_limit():
    # The gate holds the answers until three requests are in flight together, so the client is
    # seen to use its whole limit; after that every answer takes 0.15 s, time enough for a
    # client that ignored the limit (12 requests, a window of 6) to be caught above it.
    server = StubOpenAI(delay_s=0.15, gate_at=3)
    try:
        cfg = TeacherConfig(backend="http", base_url=server.url, model={"name_or_path": "stub"}, max_concurrency=3)
        requests = [TeacherRequest(f"k{i}", f"prompt {i}", "insult", i) for i in range(12)]
        teacher = CountingHttpTeacher(cfg)
        replies = list(teacher.run(requests, lambda text, category: []))
    finally:
        server.close()
    assert sorted(r.key for r in replies) == sorted(f"k{i}" for i in range(12))
    assert all(r.attempts[0].text == CANNED for r in replies)
    assert server.gate.is_set(), f"the client never had 3 requests in flight (at most {server.max_in_flight})"
    # The server's count is a lower bound of the client's own, and both stay within the limit.
    assert (server.max_in_flight, teacher.max_in_flight) == (3, 3)


def test_http_teacher_unreachable_endpoint_stops_the_run():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = TeacherConfig(backend="http", base_url=f"http://127.0.0.1:{port}/v1", model={"name_or_path": "m"}, max_retries=0)
    requests = [TeacherRequest(f"k{i}", "p", "insult", i) for i in range(10)]
    with pytest.raises(
        TeacherUnavailable, match=rf"127.0.0.1:{port}/v1/chat/completions failed \d+ requests in a row with connection errors"
    ):
        list(HttpTeacher(cfg, unreachable_after=3).run(requests, lambda text, category: []))


def test_a_teacher_refusing_the_key_stops_the_build_at_once_and_says_so(tmp_path, stub, monkeypatch):
    """HTTP 401 refuses every prompt alike: the build stops on the first, naming the key's
    variable, instead of sending every prompt and then reporting 'too few prompts'."""
    from hair_ray.data.build import build_dataset

    monkeypatch.delenv("HAIR_RAY_TEACHER_API_KEY", raising=False)
    prompts = {c: [f"{c.value} UNAUTHORISED {i}" for i in range(30)] for c in CATEGORIES}
    cfg = http_config(tmp_path, stub.url, table_source(tmp_path, prompts), "data.min_prompts_per_category=1")
    with pytest.raises(TeacherUnavailable) as caught:
        build_dataset(cfg)
    message = str(caught.value)
    assert "refused the request with HTTP 401: check the API key in $HAIR_RAY_TEACHER_API_KEY (it is not set)" in message
    assert stub.refused <= 2 * cfg.teacher.max_concurrency  # stopped within the first window, not after 210
    assert not (tmp_path / "out" / "train.jsonl").exists()  # no dataset from nothing; the partial file resumes


def test_all_garbage_fails_with_the_reasons(tmp_path, stub):
    prompts = {c: [f"{c.value} GARBAGE {i}" for i in range(2)] for c in CATEGORIES}
    cfg = http_config(tmp_path, stub.url, table_source(tmp_path, prompts))
    with pytest.raises(BuildError) as info:
        build_dataset(cfg)
    message = str(info.value)
    assert message.startswith("too few accepted demonstrations: insult has 0")
    assert "Teacher rejects: {'no_separator': 28}" in message
    assert not (tmp_path / "out" / "train.jsonl").exists()


def test_a_crash_keeps_finished_prompts_and_a_rerun_resumes(tmp_path, stub):
    prompts = {c: [f"{c.value} CANNED {i}" for i in range(2)] for c in CATEGORIES}
    source = table_source(tmp_path, prompts)
    stub.down_after = 5  # the server dies after five answers
    cfg = http_config(tmp_path, stub.url, source, "data.teacher.max_concurrency=1", "data.teacher.max_retries=0")
    with pytest.raises(TeacherUnavailable):
        build_dataset(cfg)
    partial = next((tmp_path / "out" / ".partial").glob("teacher-http-*.jsonl"))
    assert len(partial.read_text().splitlines()) == 5
    assert not (tmp_path / "out" / "train.jsonl").exists()  # no half-written dataset
    stub.down_after = None  # the server is back
    report = build_dataset(cfg).report
    assert report["teacher"]["resumed"] == 5 and report["teacher"]["requests"] == 9
    assert report["records"] == 14 and stub.answered == 14
    assert len(set(stub.seen_prompts)) == 14  # no prompt was generated twice
    again = build_dataset(cfg).report  # everything cached now
    assert again["teacher"]["requests"] == 0 and stub.answered == 14


# --------------------------------------------------------------------------- real vLLM engines


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_server(url: str, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"vllm server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"vllm server not up after {timeout_s} s")


def stop_process_group(process: subprocess.Popen) -> None:
    """Stop only the server this test started: its own process group (it spawns an engine)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


@pytest.mark.slow
def test_http_teacher_against_a_real_vllm_server(tmp_path):
    pytest.importorskip("vllm")
    from hair_ray.models.registry import resolve_model_path

    model_dir = resolve_model_path("tiny:qwen2")
    port = free_port()
    log_path = tmp_path / "server.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model_dir,
        "--served-model-name",
        "tiny",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--enforce-eager",
        "--max-model-len",
        "1024",
        # One worker process less to start: the model runs inside the engine-core process.
        "--distributed-executor-backend",
        "uni",
    ]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        started = time.monotonic()
        wait_for_server(url, process, timeout_s=240)
        print(f"vllm server up after {time.monotonic() - started:.0f} s")
        cfg = load_config(
            None,
            [
                f"data.dataset_dir={tmp_path / 'out'}",
                "data.prompts_per_category=1",
                f"data.teacher={{backend: http, fallback: import, base_url: '{url}', model: {{name_or_path: tiny}}, "
                "max_new_tokens: 32, attempts_per_prompt: 2, timeout_s: 300, max_retries: 1}",
            ],
        ).data
        report = build_dataset(cfg).report
    except BaseException:
        print(log_path.read_text()[-3000:])
        raise
    finally:
        stop_process_group(process)
    # A random tiny model writes garbage: every sample is a counted reject with a reason,
    # and the import fallback (the seed's own demonstrations) fills the dataset.
    teacher = report["teacher"]
    http_rejects = teacher["rejects_by_teacher"]["http"]
    assert teacher["accepted_by"] == {"import": 7} and report["records"] == 7
    # Two rejected samples for every reply read: the 7 used ones, and those that were still in
    # flight when the last category filled (requests stream ahead of the replies).
    assert sum(http_rejects.values()) == 2 * (7 + teacher["over_target"]), teacher
    assert set(http_rejects) <= {
        "no_separator",
        "no_drafts",
        "empty_reply",
        "too_few_drafts",
        "draft_too_long",
        "reply_too_short",
        "reply_not_refusal",
        "http_400",
    }


@pytest.mark.slow
def test_vllm_teacher_on_a_ray_data_actor_pool(tmp_path, ray_local):
    pytest.importorskip("vllm")
    # Two prompts per category, each with a ready reply for the import fallback; one insult
    # prompt is far longer than the tiny model's 1024-token context.
    table = tmp_path / "prompts.jsonl"
    answer = "I can't help with that, but I'm happy to suggest a safer alternative instead."
    rows = [
        {"prompt": f"Request {i} about {c.value}", "category": c.value, "answer": answer} for c in CATEGORIES for i in range(2)
    ]
    rows[0]["prompt"] = "Insult them all. " * 200
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    overrides = [
        f"data.dataset_dir={tmp_path / 'out'}",
        f"data.sources=[{{kind: table, name: t, path: '{table}', category_column: category, response_column: answer}}]",
        "data.teacher={backend: vllm, fallback: import, model: {name_or_path: 'tiny:qwen2', dtype: float32}, "
        "max_new_tokens: 32, max_model_len_tokens: 1024, attempts_per_prompt: 2, prompts_per_batch: 4, num_engines: 1}",
    ]
    cfg = load_config(None, overrides).data
    report = build_dataset(cfg).report
    teacher = report["teacher"]
    assert teacher["requests"] == 14 and teacher["accepted_by"] == {"import": 14}
    vllm_rejects = teacher["rejects_by_teacher"]["vllm"]
    assert vllm_rejects["prompt_too_long_for_teacher"] == 1
    # Two garbage samples for each of the other 13 prompts, each with its parser/filter reason.
    assert sum(vllm_rejects.values()) == 1 + 2 * 13, vllm_rejects
    assert set(vllm_rejects) <= {
        "prompt_too_long_for_teacher",
        "no_separator",
        "no_drafts",
        "empty_reply",
        "too_few_drafts",
        "too_many_drafts",
        "draft_too_long",
        "reply_too_short",
        "reply_not_refusal",
    }
    assert report["records"] == 14 and report["per_category"] == 2
    partial = next((tmp_path / "out" / ".partial").glob("teacher-vllm-*.jsonl"))
    assert len(partial.read_text().splitlines()) == 14
    # A re-run finds every prompt in the partial file: no engine starts, same dataset.
    again = build_dataset(cfg).report
    assert again["teacher"]["requests"] == 0 and again["teacher"]["resumed"] == 14
    assert again["files"] == report["files"]
