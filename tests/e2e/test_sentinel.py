"""REDIS_URL=redis+sentinel://... reaches the master through a real Redis Sentinel."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis

from src.client import OutreachClient
from src.jobs.allocate_phone import allocate_phone
from src.runtime.deps import build_deps, close_deps
from tests.conftest import TEST_REDIS_URL, job_ctx, make_settings
from tests.factories import Factory
from tests.workers import WorkerProcess


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def sentinel_url() -> Iterator[str]:
    target = urlsplit(TEST_REDIS_URL)
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="sentinel-"))
    config = workdir / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
        f"sentinel monitor cerniq {target.hostname} {target.port or 6379} 1\n"
    )
    process = subprocess.Popen(
        ["redis-server", str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True)
            if ping.stdout.strip() == "PONG":
                break
            time.sleep(0.05)
        yield f"redis+sentinel://127.0.0.1:{port}/cerniq/{target.path.strip('/') or 0}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


async def test_jobs_and_the_ops_client_work_through_sentinel(
    sentinel_url: str, factory: Factory, redis: Redis
) -> None:
    tenant = await factory.tenant()
    phone = await factory.phone(tenant)
    lead = await factory.lead(tenant)
    deps = await build_deps(make_settings(redis_url=sentinel_url))
    try:
        result = await allocate_phone(job_ctx(deps), {"tenantId": str(tenant), "leadId": str(lead)})
    finally:
        await close_deps(deps)
    assert result["allocatedPhoneId"] == str(phone)

    async with OutreachClient.connect(sentinel_url) as client:
        job = await client.select_channel(tenant_id=tenant, lead_id=lead)
        assert job.created
        async with WorkerProcess("SelectorSettings", REDIS_URL=sentinel_url) as worker:
            await worker.wait_healthy(redis)
            selected = await job.result(timeout=10)
    assert selected.selected_channel == "WHATSAPP"
