# Parley: `make run` serves the API on the embedded SQLite file; `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
TEST_STAMP := $(VENV)/.test-installed-stamp
PARLEY_FUZZ_SEED     ?= 20261129
PARLEY_FUZZ_EXAMPLES ?= 8

.PHONY: install run test test-fast fuzz bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Parley needs Python 3.11 or newer; set PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	@touch $(STAMP)

# The test extras (pytest, playwright, schemathesis, hypothesis...) only for the targets that need them.
$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(TEST_STAMP)

install: $(STAMP)

# make run PORT=8080 serves on another port (as does PARLEY_PORT=8080 make run)
run: $(STAMP)
	$(VENV)/bin/parley demo load --if-empty
	$(VENV)/bin/parley serve $(if $(PORT),--port $(PORT))

test: $(TEST_STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -m 'not serial'
	$(PY) -m pytest -m serial

test-fast: $(TEST_STAMP)
	$(PY) -m pytest -m 'not slow'

# Schemathesis against the OpenAPI schema on SQLite and PostgreSQL; CI runs a fixed seed.
# A longer random run: make fuzz PARLEY_FUZZ_SEED=random PARLEY_FUZZ_EXAMPLES=50
fuzz: $(TEST_STAMP)
	PARLEY_FUZZ_SEED=$(PARLEY_FUZZ_SEED) PARLEY_FUZZ_EXAMPLES=$(PARLEY_FUZZ_EXAMPLES) $(PY) -m pytest -s -p no:cacheprovider tests/api/test_schema_fuzz.py

bench: $(TEST_STAMP)
	$(PY) -m bench.append

clean:
	rm -rf $(VENV) var .pytest_cache
