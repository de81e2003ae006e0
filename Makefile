# keyless — the two commands of the quick start are `make run` and `make test`.
PYTHON  ?= python3
SHARED  ?= ../shared
VENV    := .venv
BIN     := $(VENV)/bin
DATA    ?= .keyless
PORT    ?= 3000
PYTEST_ARGS ?= -n 2

.PHONY: run test lint unit integration interop bench fuzz clean venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## make run: install keyless into .venv and start the whole stack on SQLite under .keyless/
run: venv
	$(BIN)/keyless serve --data-dir $(DATA) --port $(PORT) \
	    --oidc-user alice@example.com:s3cret-password

## make test: install what the tests need, lint, type-check and run every test
test: venv interop lint
	$(BIN)/pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -m 'not integration' $(PYTEST_ARGS)

integration: venv interop
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

## make fuzz: the fuzz properties with the long profile (docs/fuzzing.md); FUZZ_EXAMPLES=N per property
FUZZ_EXAMPLES ?= 5000
fuzz: venv
	HYPOTHESIS_PROFILE=long KEYLESS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
	    $(BIN)/pytest tests/fuzz $(PYTEST_ARGS) --timeout 0

## the pinned real clients, in ignored project-local folders (docs/interop.md §1)
interop: .interop/venv/.installed .interop/node/.installed

.interop/venv/.installed: $(SHARED)/interop/requirements-sigstore-python.txt
	$(PYTHON) -m venv .interop/venv
	.interop/venv/bin/pip install --quiet -r $<
	touch $@

.interop/node/.installed: $(SHARED)/interop/package-lock.json
	mkdir -p .interop/node
	cp $(SHARED)/interop/package.json $(SHARED)/interop/package-lock.json .interop/node/
	npm ci --prefix .interop/node --no-audit --no-fund --loglevel=error
	touch $@

bench: venv
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .interop .pgtest build dist src/*.egg-info
