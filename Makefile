# Two commands for a newcomer: `make run` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Where `make run` serves: `make run PORT=9000 HOST=0.0.0.0`. Plain `=`, not `?=`, so only the
# command line overrides them, never the environment (zsh sets HOST to the machine's name).
HOST = 127.0.0.1
PORT = 8000
# What a client on this machine calls: a wildcard address is not one to connect to.
URL = http://$(if $(filter 0.0.0.0,$(HOST)),127.0.0.1,$(HOST)):$(PORT)

# Debian packages the tests drive, as PROGRAM=PACKAGE pairs: `make packages` (and so `make
# test`) installs each one whose program is missing, as root, as on CI. The balancer test runs
# Debian's HAProxy, or the one CHATRELAY_HAPROXY names; the browser tests Debian's Chromium
# (never a browser Playwright downloads), or the one CHATRELAY_CHROMIUM names.
HAPROXY = $(if $(CHATRELAY_HAPROXY),$(CHATRELAY_HAPROXY),/usr/sbin/haproxy)
CHROMIUM = $(if $(CHATRELAY_CHROMIUM),$(CHATRELAY_CHROMIUM),/usr/bin/chromium)
DEBIAN_PACKAGES = $(HAPROXY)=haproxy $(CHROMIUM)=chromium

.PHONY: run test packages node browser bench format clean

# Node suites (tests/node/<name>/, each with a committed package-lock.json): the real client
# libraries from npm, installed with `npm ci` when node_modules is missing or older than the
# lockfile. A new suite (tests/node/ag-ui) needs nothing here but its own lockfile.
NODE_LOCKS := $(wildcard tests/node/*/package-lock.json)
NODE_STAMPS := $(NODE_LOCKS:package-lock.json=node_modules/.installed)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

.env:
	@echo "AUTH_SECRET=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(48))')" > .env
	@echo "# The chat page at / may mint a token from a user name (refused with ENV=production)." >> .env
	@echo "DEV_LOGIN=true" >> .env
	@echo "created .env with a random AUTH_SECRET and DEV_LOGIN=true (keep it out of git)"

run: $(STAMP) .env
	@echo ""
	@echo "chatrelay on $(URL) (SQLite ./chatrelay.db, offline model)."
	@echo "Chat in a browser: open $(URL)/ and sign in with any user name."
	@echo "In another shell:"
	@echo '  TOKEN=$$($(BIN)/chatrelay token alice)'
	@echo '  curl -N -H "Authorization: Bearer $$TOKEN" -H "Accept: text/event-stream" \'
	@echo '       -H "Content-Type: application/json" -d '"'"'{"message":"Hello there"}'"'"' \'
	@echo '       $(URL)/api/alice/chat'
	@echo '  (drop the Accept header for one JSON reply)'
	@echo ""
	$(BIN)/chatrelay serve --host $(HOST) --port $(PORT)

packages:
	@sh scripts/debian-packages.sh $(DEBIAN_PACKAGES)

# The old name of the step that installs Chromium (now with the rest).
browser: packages

tests/node/%/node_modules/.installed: tests/node/%/package-lock.json
	cd tests/node/$* && npm ci --no-audit --no-fund --loglevel=error
	touch $@

node: $(NODE_STAMPS)

test: $(STAMP) packages node
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) .pytest_cache chatrelay.db chatrelay.db-*
