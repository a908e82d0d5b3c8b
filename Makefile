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
# The page JupyterLab opens on (make lab; Binder's link opens the same file).
START_PAGE := start-here.ipynb
# Notebooks under nbval; the settings live in tests/notebooks/, out of the file browser.
NBVAL  := LAB_PRESET=fast $(PYTEST) -p tests.notebooks.nbval_plugin --nbval-lax \
	--nbval-sanitize-with tests/notebooks/sanitize.cfg --nbval-cell-timeout 180 -p no:cacheprovider
# configurable-http-proxy (npm) for the JupyterHub test, project-local.
NODE_DIR ?= .node
CHP    := $(NODE_DIR)/node_modules/.bin/configurable-http-proxy

.PHONY: lab test install browser-deps hub-deps unit integration notebooks bench clean help

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

# The JupyterHub test's proxy: configurable-http-proxy 5.x from the npm registry.
hub-deps: $(CHP)

$(CHP):
	@if ! command -v npm >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing nodejs and npm (Debian packages)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
		else \
			echo "the JupyterHub test needs npm: sudo apt-get install nodejs npm"; \
			exit 1; \
		fi; \
	fi
	npm install --prefix $(NODE_DIR) --no-audit --no-fund configurable-http-proxy@5

# JupyterLab on the lessons, with this project's kernel; each notebook starts its own lab.
# It opens on the start page; etc/jupyter/ adds this project's defaults (Markdown files
# open rendered). More options: make lab LAB_ARGS="--port=8899 --no-browser".
# (python -m lab up starts a lab in a terminal instead.)
lab: install
	JUPYTER_CONFIG_PATH=$(CURDIR)/etc/jupyter$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH} \
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --notebook-dir=notebooks \
		--LabApp.default_url=/lab/tree/$(START_PAGE) $(LAB_ARGS) \
		$$( [ "$$(id -u)" = 0 ] && echo --allow-root )

test: install browser-deps hub-deps
	$(PYTEST) -n $(JOBS) --dist loadfile tests
	$(NBVAL) -n $(JOBS) --dist loadfile notebooks

unit: install
	$(PYTEST) tests/unit

integration: install
	$(PYTEST) -n $(JOBS) --dist loadfile tests/integration

notebooks: install
	$(NBVAL) -n $(JOBS) --dist loadfile notebooks

bench: install
	$(BIN)/python -m lab bench bus

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts $(NODE_DIR)
