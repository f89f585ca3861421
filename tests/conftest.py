"""Shared fixtures: one small generated platform with every flaw, and one pipeline run on it.

Prefect: tests marked `prefect` share one `prefect_test_harness` per session (it starts a
temporary Prefect server once); everything else runs the plain pipeline without Prefect.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

from flows.demo import generate_demo
from flows.pipeline import RunResult, run_pipeline
from flows.settings import Settings

DEMO_END = date(2026, 11, 2)
# The platform's clock during a run: shortly after the demo's last hour closed.
RUN_STARTED_AT = datetime(2026, 11, 2, 0, 30)


@pytest.fixture(scope="session")
def flawed_platform(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 agents over 9 days (crossing a month and an ISO week), every flaw switched on."""
    out = tmp_path_factory.mktemp("platform")
    generate_demo(out, agents=6, days=9, seed=11, end=DEMO_END, flaw_rate=0.02)
    return out


@pytest.fixture(scope="session")
def manifest(flawed_platform: Path) -> dict:
    """What the generator says it wrote, flaws included."""
    return json.loads((flawed_platform / "demo_manifest.json").read_text())


def settings_for(platform: Path, warehouse: Path) -> Settings:
    """Settings that read a generated platform and publish to `warehouse`."""
    return Settings.resolve(
        db_url="sqlite:///" + str((platform / "agents.db").resolve()),
        logs_dir=platform / "logs",
        warehouse=warehouse,
    )


@pytest.fixture(scope="session")
def flawed_run(
    flawed_platform: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Settings, RunResult]:
    """One plain (Prefect-free) pipeline run over the flawed platform."""
    warehouse = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
    settings = settings_for(flawed_platform, warehouse)
    return settings, run_pipeline(settings, run_started_at=RUN_STARTED_AT)


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One temporary Prefect server for the whole session, under its own PREFECT_HOME."""
    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
