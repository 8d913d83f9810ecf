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

# The browser tests drive Debian's Chromium (never a browser Playwright downloads), or the one
# CHATRELAY_CHROMIUM names.
CHROMIUM = $(if $(CHATRELAY_CHROMIUM),$(CHATRELAY_CHROMIUM),/usr/bin/chromium)

.PHONY: run test browser bench format clean

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

# Debian's chromium for the browser tests, installed when missing (as root, as on CI).
browser:
	@test -x $(CHROMIUM) || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
	    echo "no $(CHROMIUM): install Debian's chromium package (apt-get install chromium)"; \
	    echo "as root, or set CHATRELAY_CHROMIUM to a Chromium binary"; \
	    exit 1; \
	  fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	}

test: $(STAMP) browser
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
