from __future__ import annotations

import asyncio
import json
import logging

import pytest
from loguru import logger

from src.errors import NotFound
from src.runtime.log import bind_job, configure_logging, enrich_job


@pytest.fixture(autouse=True)
def restore_text_logs() -> None:
    yield
    configure_logging("INFO", "text")


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_format_is_one_object_per_line_with_the_job_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")

    async def job() -> None:
        bind_job("wa:job-1", "outreach:orchestrator:dispatch")
        logging.getLogger("arq.worker").info("→ started")  # arq's own line, before the input is parsed
        enrich_job(tenantId="t-1", correlationId="corr-9")
        logger.info("dispatched {} leads", 3)
        logging.getLogger("sqlalchemy.engine").warning("slow statement")

    asyncio.run(job())
    logger.info("outside any job")
    lines = json_lines(capsys.readouterr().err)

    assert [line["message"] for line in lines] == [
        "→ started",
        "dispatched 3 leads",
        "slow statement",
        "outside any job",
    ]
    assert lines[0]["job_id"] == "wa:job-1"
    assert lines[0]["queue"] == "outreach:orchestrator:dispatch"
    assert lines[0]["logger"] == "arq.worker"
    for line in lines[1:3]:
        assert (line["job_id"], line["tenantId"], line["correlationId"]) == ("wa:job-1", "t-1", "corr-9")
    assert lines[2]["logger"] == "sqlalchemy.engine"
    assert lines[2]["level"] == "WARNING"
    assert "job_id" not in lines[3]


def test_a_permanent_job_failure_is_logged_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    try:
        raise NotFound("lead x not found for tenant y")
    except NotFound:
        logging.getLogger("arq.worker").exception("job failed")
    try:
        raise RuntimeError("a bug")
    except RuntimeError:
        logging.getLogger("arq.worker").exception("job failed")
    expected, bug = json_lines(capsys.readouterr().err)
    assert "traceback" not in expected
    assert "RuntimeError: a bug" in str(bug["traceback"])


def test_text_format_prefixes_the_job_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "text")

    async def job() -> None:
        bind_job("j-7", "outreach:channel:selector")
        enrich_job(tenantId="t-2", correlationId=None)
        logger.info("selected {}", "WHATSAPP")

    asyncio.run(job())
    line = capsys.readouterr().err.strip()
    assert line.endswith("[queue=outreach:channel:selector job_id=j-7 tenantId=t-2] selected WHATSAPP")
