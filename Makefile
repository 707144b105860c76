.PHONY: test demo worker bench lint status

demo:  ## from a fresh clone: services, migrations, demo tenant, a dispatch through the real worker
	bash scripts/demo.sh

test:  ## everything CI runs: install, services, migrations, ruff, mypy, pytest
	bash scripts/test.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

worker:  ## all four queues in one process (needs DATABASE_URL / REDIS_URL or .env)
	.venv/bin/arq src.worker.Settings

status:  ## queue depths, today's quota per phone, worker health (needs DATABASE_URL / REDIS_URL or .env)
	.venv/bin/python -m src.ops status
