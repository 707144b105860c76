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

# BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/cerniq_bench, and databases named after
# it) and BENCH_REDIS_URL (default redis://127.0.0.1:6379/11) are emptied by the benchmarks.
bench:  ## benchmarks in sequence, each printing figures, target and PASS/FAIL (bench/README.md); QUICK=1 for short runs
	bash scripts/bootstrap.sh
	bash scripts/services.sh
	@status=0; \
	for run in "dispatch_throughput" "through_worker" "idle_worker" "per_lead_jobs" "scale$(if $(QUICK),, --explain)"; do \
		echo "==> bench/$${run%% *}.py"; \
		.venv/bin/python -m bench.$$run $(if $(QUICK),--quick) || status=1; \
	done; \
	exit $$status
