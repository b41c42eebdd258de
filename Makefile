# The two commands: `make demo` (set up, run the main job) and `make test` (set up, run the tests).
.PHONY: setup test demo experiment clean-venv

setup:
	bash scripts/setup.sh

test: setup
	bash scripts/test.sh

demo: setup
	bash scripts/demo.sh $(ARGS)

# The alignment recipe, about an hour: `make experiment DATA=/path/to/data [SEED=1]`.
experiment: setup
	bash scripts/experiment.sh $(ARGS)

clean-venv:
	rm -rf .venv .venv-clip
