"""`ray job submit` against a real token-auth Ray cluster: the way a user runs hair_ray.

The test starts its own head node (`ray start --head --block` from the project venv, in its own
session, temp dir and ports, token auth on), submits the tiny training job with the repo as the
job's working_dir, waits for SUCCEEDED and reads the run's metrics. It also checks that a client
without the token is turned away. It stops only the cluster it started: the head's process group
and every process that descends from it (never `ray stop`, which ends every Ray on the machine).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from hair_ray.data.seed_data import load_seed_records

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# The venv that runs the tests also runs the cluster: the job's `python` is the cluster's.
VENV_BIN = Path(sys.executable).parent
# Uploading these would take minutes (GBs of wheels) and they are not needed by the job.
EXCLUDES = [
    "/.venv/",
    "/.venv-clip/",
    "/.venv-*/",
    "/.git/",
    "/outputs/",
    "/runs/",
    "/wandb/",
    "/.cache/",
    "/.hypothesis/",
    "/.pytest_cache/",
    "__pycache__/",
    "/benchmarks/results/",
]
TOTAL_STEPS = 2
JOB_TIMEOUT_S = 1200  # 2 shared cores: engine start + 2 steps take ~3 min idle, far more when busy


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def free_port_block(size: int) -> int:
    """The first port of `size` consecutive free ports, below the kernel's ephemeral range so
    that ports handed out by bind(0) elsewhere do not land in the block while Ray uses it."""
    for _ in range(200):
        base = random.randrange(20000, 30000 - size)
        try:
            with ExitStack() as stack:
                for port in range(base, base + size):
                    sock = stack.enter_context(closing(socket.socket()))
                    sock.bind(("", port))
            return base
        except OSError:
            continue
    raise RuntimeError(f"no block of {size} free ports found")


@dataclass
class LocalCluster:
    process: subprocess.Popen
    temp_dir: Path
    dashboard_url: str
    token_path: Path
    log_path: Path

    def client_env(self, *, with_token: bool = True) -> dict[str, str]:
        env = base_env()
        if with_token:
            env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(self.token_path))
        else:
            env["RAY_AUTH_MODE"] = "disabled"  # a client that sends no token at all
        return env

    def ray(self, *args: str, with_token: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(VENV_BIN / "ray"), *args],
            env=self.client_env(with_token=with_token),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def base_env() -> dict[str, str]:
    """The environment minus anything that points at another cluster or another token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") or k == "RAY_USAGE_STATS_ENABLED"}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",  # `python` in the job is the venv's
        VIRTUAL_ENV=str(VENV_BIN.parent),
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONUNBUFFERED="1",
    )
    return env


def http_status(url: str, token: str | None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def start_head(temp_dir: Path) -> LocalCluster:
    token_path = temp_dir / "auth_token"
    token = secrets.token_hex(32)  # what `ray get-auth-token --generate` writes
    token_path.write_text(token)
    token_path.chmod(0o600)
    dashboard_port = free_port()
    worker_base = free_port_block(64)
    env = base_env()
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_path))
    command = [
        str(VENV_BIN / "ray"),
        "start",
        "--head",
        "--block",
        f"--temp-dir={temp_dir / 'ray'}",
        f"--port={free_port()}",
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--ray-client-server-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--min-worker-port={worker_base}",
        f"--max-worker-port={worker_base + 63}",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard_port}",
        "--num-cpus=2",
        "--num-gpus=0",
        f"--object-store-memory={256 * 2**20}",
        "--disable-usage-stats",
    ]
    log_path = temp_dir / "head.log"
    with log_path.open("w") as log:
        # Its own session: the head and everything it spawns share a process group we can end.
        process = subprocess.Popen(command, env=env, cwd=temp_dir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    cluster = LocalCluster(process, temp_dir, f"http://127.0.0.1:{dashboard_port}", token_path, log_path)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stop_head(cluster)  # what it started before failing shares its process group
            raise RuntimeError(f"ray start exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            if http_status(f"{cluster.dashboard_url}/api/version", token) == 200:
                return cluster
        except OSError:
            pass
        time.sleep(2)
    stop_head(cluster)
    raise RuntimeError(f"the dashboard did not answer within 180 s:\n{log_path.read_text()[-4000:]}")


def stop_head(cluster: LocalCluster) -> None:
    """End this cluster only: SIGTERM the head's process group (`ray start --block` then shuts its
    node down), then SIGKILL whatever of its descendants is still alive."""
    import psutil

    try:
        descendants = psutil.Process(cluster.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(cluster.process.pid, signal.SIGTERM)
    try:
        cluster.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(cluster.process.pid, signal.SIGKILL)
        cluster.process.wait(timeout=30)
    _, alive = psutil.wait_procs(descendants, timeout=30)
    for proc in alive:  # workers that left the process group (vLLM engine cores, raylet children)
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=10)


@pytest.fixture(scope="module")  # one head for both tests: it takes ~1 min to start here
def cluster():
    if shutil.which("ray", path=str(VENV_BIN)) is None:
        pytest.skip(f"no `ray` next to {sys.executable}")
    # Short and under /tmp: Ray's unix socket paths must stay under ~107 characters.
    temp_dir = Path(tempfile.mkdtemp(prefix="hr", dir="/tmp"))
    try:
        head = start_head(temp_dir)
    except RuntimeError:
        # On a loaded machine the raylet can miss Ray's fixed 30 s start-up window: once more.
        shutil.rmtree(temp_dir / "ray", ignore_errors=True)
        head = start_head(temp_dir)
    try:
        yield head
    finally:
        stop_head(head)
        shutil.rmtree(temp_dir, ignore_errors=True)


def write_dataset(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "train.jsonl").open("w") as handle:
        for record in load_seed_records():
            handle.write(json.dumps(record) + "\n")
    return folder


def test_a_client_without_the_token_is_turned_away(cluster):
    assert http_status(f"{cluster.dashboard_url}/api/jobs/", None) == 401
    assert http_status(f"{cluster.dashboard_url}/api/jobs/", "0" * 64) == 403
    refused = cluster.ray("job", "submit", "--address", cluster.dashboard_url, "--no-wait", "--", "echo", "hi", with_token=False)
    assert refused.returncode != 0, refused.stdout + refused.stderr
    assert "Authentication required" in refused.stdout + refused.stderr, refused.stdout + refused.stderr
    # Nothing was queued by the refused request.
    listed = cluster.ray("job", "list", "--address", cluster.dashboard_url)
    assert listed.returncode == 0, listed.stderr
    assert "echo hi" not in listed.stdout


@pytest.mark.timeout(JOB_TIMEOUT_S + 300)
def test_ray_job_submit_runs_the_tiny_training_job(cluster, tmp_path):
    runs = tmp_path / "runs"
    overrides = [
        f"output_dir={runs}",
        f"data.dataset_dir={write_dataset(tmp_path / 'data')}",
        "reward.function=tests.e2e.rewards:target_letter_share",
        "hardness.data_hardness=false",
        "tracking.wandb_mode=disabled",
        f"algo.total_steps={TOTAL_STEPS}",
        "algo.prompts_per_step=7",
        "algo.group_size=2",
        "rollout.max_new_tokens=16",
        "placement.cpus_per_rollout_worker=0.5",
        "placement.cpus_per_learner_worker=0.5",
    ]
    runtime_env = {
        "excludes": EXCLUDES,
        "env_vars": {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "WANDB_MODE": "disabled",
            "TOKENIZERS_PARALLELISM": "false",
        },
    }
    # First line: where `hair_ray` and `python` come from inside the job.
    probe = "import sys, hair_ray; print('HAIR_RAY_PROBE', hair_ray.__file__, sys.prefix)"
    entrypoint = f'python -c "{probe}" && python -m hair_ray.cli train --config jobs/tiny_cpu.yaml ' + " ".join(overrides)
    job_id = f"hair-ray-e2e-{secrets.token_hex(4)}"
    submit = cluster.ray(
        "job",
        "submit",
        "--address",
        cluster.dashboard_url,
        "--submission-id",
        job_id,
        "--working-dir",
        str(REPO),
        "--runtime-env-json",
        json.dumps(runtime_env),
        "--no-wait",
        "--",
        "bash",
        "-c",
        entrypoint,
    )
    assert submit.returncode == 0, submit.stdout + submit.stderr

    status = wait_for_job(cluster, job_id, JOB_TIMEOUT_S)
    logs = cluster.ray("job", "logs", "--address", cluster.dashboard_url, job_id).stdout
    if status != "SUCCEEDED":
        print(logs[-20000:])
        pytest.fail(f"job {job_id} ended {status}; its logs are printed above")

    probe_line = next(line for line in logs.splitlines() if line.startswith("HAIR_RAY_PROBE"))
    _, module_file, prefix = probe_line.split()
    assert not module_file.startswith(str(REPO)), f"hair_ray came from the checkout, not the working_dir: {module_file}"
    assert Path(prefix) == VENV_BIN.parent, f"the job ran under {prefix}, not the project venv"

    metrics_file = runs / "tiny-cpu" / "metrics.jsonl"
    lines = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    assert [m["step"] for m in lines] == list(range(1, TOTAL_STEPS + 1))
    assert all(math.isfinite(m["reward/mean"]) for m in lines), lines


def wait_for_job(cluster: LocalCluster, job_id: str, timeout_s: float) -> str:
    """Poll the job's status over the REST API (no Python start per poll on 2 busy cores);
    past the deadline, stop the job and return TIMEOUT."""
    token = cluster.token_path.read_text().strip()
    request = urllib.request.Request(f"{cluster.dashboard_url}/api/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with urllib.request.urlopen(request, timeout=30) as response:
            status = json.load(response)["status"]
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            return status
        time.sleep(5)
    cluster.ray("job", "stop", "--address", cluster.dashboard_url, job_id)
    return "TIMEOUT"
