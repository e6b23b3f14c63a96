# The README's two commands: `make bench` (the default comparison) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: bench test smoke gate benchmarks clean browser

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[test,deploy]'
	touch $@

bench: $(VENV)/.installed  ## the default comparison, ending with results/runs/<time>/report.html
	$(PY) -m bench $(ARGS)

# The tests run in two parts: all but the smoke run's across the cores (pytest-xdist, at most 4 workers), then the
# smoke run's alone, since they time it. Exit status 5 ("no tests collected": ARGS selected none of a part) is fine.
test: $(VENV)/.installed browser  ## lint and format check, then the test suite (benchmarks excluded)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check --quiet . || \
	  { echo "lint: fix with $(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format ."; exit 1; }
	$(PY) -m pytest -q -m "not smoke" -n auto --maxprocesses=4 --durations=10 $(ARGS) || [ $$? = 5 ]
	$(PY) -m pytest -q -m smoke --durations=5 $(ARGS) || [ $$? = 5 ]

# Chromium for the report's browser test: Debian's package where this user may install it (about 30 s);
# elsewhere the test is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; }; } && \
	  echo "installed Chromium (Debian's package) for the report's browser test"; } || \
	  echo "no Chromium here: the report's browser test will be skipped"

smoke: $(VENV)/.installed  ## a tiny version of everything, about two minutes on 2 cores
	$(PY) -m bench experiment=smoke $(ARGS)

benchmarks: $(VENV)/.installed  ## pytest-benchmark timings of every encoder
	$(PY) -m pytest tests/benchmarks --benchmark-enable --benchmark-only $(ARGS)

gate: $(VENV)/.installed  ## speed-regression gate: this tree against BASE (default origin/main)
	$(PY) -m bench.gate --base $${BASE:-origin/main} $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
