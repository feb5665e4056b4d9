# The two set-up commands from the README. Each installs what it needs first (scripts/setup).
.PHONY: demo test setup lint down

setup:
	@scripts/setup

demo: setup
	@.venv/bin/fjord dev up

down:
	@.venv/bin/fjord dev down

test: setup
	@scripts/test

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy
