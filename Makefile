.PHONY: test demo worker bench lint

test:  ## everything CI runs: install, services, migrations, ruff, mypy, pytest
	bash scripts/test.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

worker:  ## all four queues in one process (needs DATABASE_URL / REDIS_URL or .env)
	.venv/bin/arq src.worker.Settings
