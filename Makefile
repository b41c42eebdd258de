# The two commands: `make demo` (set up, run the main job) and `make test` (set up, run the tests).
.PHONY: setup lint test test-fast demo experiment bench clean-venv

setup:
	bash scripts/setup.sh

# Lint, format and types (ruff, mypy; settings in pyproject.toml): CI runs it before the tests.
lint: setup
	.venv/bin/ruff check hair_ray tests benchmarks scripts
	.venv/bin/ruff format --check hair_ray tests benchmarks scripts
	.venv/bin/mypy

test: setup
	bash scripts/test.sh

# The suite without the `slow` tests (real engines, whole runs): a few minutes, for the edit loop.
test-fast: setup
	bash scripts/test.sh --fast

demo: setup
	bash scripts/demo.sh $(ARGS)

# The alignment recipe, about an hour: `make experiment DATA=/path/to/data [SEED=1]`.
experiment: setup
	bash scripts/experiment.sh $(ARGS)

# The rollout/learner split beside bare baselines and TRL's GRPOTrainer, ~10 min on 2 cores:
# `make bench [ARGS="--steps 5"]` (benchmarks/README.md).
bench: setup
	HF_HUB_OFFLINE=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false .venv/bin/hair-ray bench \
		--config jobs/bench_smollm2_cpu.yaml --peer trl --out benchmarks/results/split_cpu $(ARGS)

clean-venv:
	rm -rf .venv .venv-clip
