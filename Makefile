# keyless — the two commands of the quick start are `make run` and `make test`.
PYTHON  ?= python3
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
	$(BIN)/pip install --quiet -e '.[server,dev]'
	touch $@

## make run: install keyless with its server extra into .venv and start the whole stack on SQLite
## under .keyless/ (demo user alice@example.com, password s3cret-password, kept in
## $(DATA)/oidc-users, mode 0600, so that it is not on the command line where `ps` shows it)
run: venv
	@mkdir -p $(DATA) && chmod 700 $(DATA)
	@test -f $(DATA)/oidc-users || (umask 077 && echo 'alice@example.com:s3cret-password' > $(DATA)/oidc-users)
	$(BIN)/keyless serve --data-dir $(DATA) --port $(PORT) --oidc-user-file $(DATA)/oidc-users

## make test: install what the tests need, lint, type-check and run every test; then report the
## coverage of src/keyless, subprocesses (the CLI, keyless serve) included (report only, no gate;
## settings in pyproject.toml; about a third more CPU time than without)
test: venv interop lint
	@rm -rf .coverage-data && mkdir -p .coverage-data
	$(BIN)/coverage run -m pytest $(PYTEST_ARGS); status=$$?; \
	  $(BIN)/coverage combine -q && $(BIN)/coverage report; exit $$status

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

## the pinned real clients (tests/interop/), installed into the ignored .interop/ folder
PINS := tests/interop
interop: .interop/venv/.installed .interop/node/.installed

.interop/venv/.installed: $(PINS)/requirements-sigstore-python.txt
	$(PYTHON) -m venv .interop/venv
	.interop/venv/bin/pip install --quiet -r $<
	touch $@

.interop/node/.installed: $(PINS)/package.json $(PINS)/package-lock.json
	mkdir -p .interop/node
	cp $(PINS)/package.json $(PINS)/package-lock.json .interop/node/
	npm ci --prefix .interop/node --no-audit --no-fund --loglevel=error
	touch $@

bench: venv
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .interop .pgtest build dist src/*.egg-info
