# The two commands: `make demo` (set up, run the main job) and `make test` (set up, run the tests).
.PHONY: setup test demo clean-venv

setup:
	bash scripts/setup.sh

test: setup
	bash scripts/test.sh

demo: setup
	bash scripts/demo.sh $(ARGS)

clean-venv:
	rm -rf .venv .venv-clip
