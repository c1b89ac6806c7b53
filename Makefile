# The two commands of the README: `make demo` and `make test`. Everything else
# is set-up they run for you; each step is idempotent and fast when done.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv system provision lint format bench

demo: venv
	$(BIN)/vllm-console demo $(DEMO_ARGS)

test: system venv provision
	$(BIN)/python -m pytest $(PYTEST_ARGS)

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

# Debian packages the tests need: a Docker engine, busybox for the tiny base
# image, debootstrap for the CPU vLLM image, tmux for the terminal walk-through.
system:
	bash scripts/install-system.sh

# The local vLLM runtime and the small models, cached under the XDG data folder:
# the Gemma (base model: speculative-decoding tests) and SmolLM2-135M-Instruct
# (the demo's chat: it answers questions). The runtime installs while the
# models are fetched and converted (docs/getting-started.md).
provision: venv
	$(BIN)/vllm-console model fetch gemma3-270m smollm2-135m

lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: venv provision
	$(BIN)/python -m bench
