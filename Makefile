# Conductor Lab. Two commands do everything on a fresh machine with only python3:
#   make lab    install into .venv and open the lessons in JupyterLab
#   make test   install into .venv and run every test (unit, integration, browser, notebooks)
SHELL  := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST := $(BIN)/python -m pytest
# Parallel workers for the test suite; each test has its own run dir and random ports.
JOBS   ?= 2

.PHONY: lab test install browser-deps unit integration notebooks bench clean help

help:
	@echo "make lab     install into $(VENV) and open the lessons in JupyterLab"
	@echo "make test    install into $(VENV) and run every test"
	@echo "make bench   run the benchmarks (python -m lab bench)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,notebook]' 2>&1 \
		| { grep -v "^WARNING: Location" || true; }
	$(BIN)/python -c "import zmq, msgpack, bokeh, ipywidgets, networkx, tornado, nbval, selenium"
	@touch $(STAMP)

install: $(STAMP)

# Browser tests drive Debian's chromium + chromium-driver (never a downloaded browser).
browser-deps:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
		true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium and chromium-driver (Debian packages)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else \
		echo "browser tests need chromium and chromium-driver: sudo apt-get install chromium chromium-driver"; \
		exit 1; \
	fi

# JupyterLab on the lessons, with this project's kernel; each notebook starts its own lab.
# (python -m lab up starts a lab in a terminal instead.)
lab: install
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --notebook-dir=notebooks \
		$$( [ "$$(id -u)" = 0 ] && echo --allow-root )

test: install browser-deps
	$(PYTEST) -n $(JOBS) --dist loadfile tests
	@if ls notebooks/*.ipynb >/dev/null 2>&1; then \
		LAB_PRESET=fast $(PYTEST) -n $(JOBS) --dist loadfile --nbval-lax \
			--nbval-sanitize-with notebooks/sanitize.cfg --nbval-cell-timeout 180 \
			-p no:cacheprovider notebooks; \
	fi

unit: install
	$(PYTEST) tests/unit

integration: install
	$(PYTEST) -n $(JOBS) --dist loadfile tests/integration

bench: install
	$(BIN)/python -m lab bench bus

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
