# One command to run, one to try it offline, one to test. All create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

DEMO_PORT ?= 8765
FEEDS_PORT ?= 8090

.PHONY: run demo test lint bench bench-peers clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ required"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/feedmaker run --once

# The bundled example sites (demo/www) on 127.0.0.1:$(DEMO_PORT) and the daemon on $(FEEDS_PORT); Ctrl-C stops both.
demo: $(STAMP)
	$(BIN)/python demo/serve.py --port $(DEMO_PORT) --feeds-port $(FEEDS_PORT)

lint: $(STAMP)
	$(BIN)/ruff check feedmaker tests benchmarks demo
	$(BIN)/ruff format --check feedmaker tests benchmarks demo
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

# Figures, side by side in one run each; none of them is a pass/fail test.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python benchmarks/extract.py
	$(BIN)/python benchmarks/extract_floor.py
	$(BIN)/python benchmarks/accuracy.py
	$(BIN)/python benchmarks/fetch_bomb.py
	$(BIN)/python benchmarks/daemon.py
	$(BIN)/python -m benchmarks.isolation
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/daemon_scale.py  # ~12 min: the daemon at 1,000 / 2,000 / 5,000 sites

# Peers need Debian packages (rss-bridge, php-cli); each is skipped with a message when it cannot run.
bench-peers: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	-apt-get install -y -qq rss-bridge php-cli
	$(BIN)/python benchmarks/peers.py

clean:
	rm -rf $(VENV) output state demo/.run
