"""The pipeline as a Prefect flow, end to end, under a temporary Prefect server."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from prefect.client.schemas.sorting import TaskRunSort

from flows.prefect_flows import pipeline_flow
from warehouse.store import state_path_for

pytestmark = pytest.mark.prefect


def test_the_flow_runs_every_stage_as_a_task_and_publishes(
    prefect_harness: None, flawed_platform: Path, tmp_path: Path
) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    state = pipeline_flow(
        db_url="sqlite:///" + str((flawed_platform / "agents.db").resolve()),
        logs_dir=str(flawed_platform / "logs"),
        warehouse=str(warehouse),
        return_state=True,
    )
    assert state.is_completed()
    result = state.result()
    assert result["status"] == "succeeded"
    con = duckdb.connect(str(state_path_for(warehouse)), read_only=True)
    stages = {s for (s,) in con.execute("SELECT stage FROM ops.stage_timings").fetchall()}
    con.close()
    con = duckdb.connect(str(warehouse), read_only=True)
    tasks = con.execute("SELECT count(*) FROM marts.agent_kpis").fetchone()[0]
    con.close()
    assert stages == {
        "extract_registry",
        "extract_database",
        "extract_logs",
        "build_marts",
        "validate_input",
        "validate_output",
        "write_marts",
        "publish",
    }
    assert tasks > 0

    from prefect.client.orchestration import get_client

    async def task_names() -> set[str]:
        async with get_client() as client:
            runs = await client.read_task_runs(limit=200, sort=TaskRunSort.EXPECTED_START_TIME_DESC)
            return {run.name.rsplit("-", 1)[0] for run in runs}

    import asyncio

    names = asyncio.run(task_names())
    assert {
        "extract-registry",
        "extract-database",
        "extract-logs",
        "build-marts",
        "validate-input",
        "validate-output",
        "write-marts",
        "publish",
    } <= names


def test_an_unreachable_database_is_retried_then_fails_the_flow_with_its_reason(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTKPI_EXTRACT_RETRIES", "2")
    monkeypatch.setenv("AGENTKPI_RETRY_DELAY_S", "0.1")
    state = pipeline_flow(
        db_url="sqlite:///" + str(tmp_path / "missing.db"),
        logs_dir=str(tmp_path),
        warehouse=str(tmp_path / "warehouse.duckdb"),
        return_state=True,
    )
    assert state.is_failed()
    assert "operational database not found" in str(state.result(raise_on_failure=False))

    from prefect.client.orchestration import get_client

    async def extract_attempts() -> int:  # the first stage to open the database
        async with get_client() as client:
            runs = await client.read_task_runs(limit=200, sort=TaskRunSort.EXPECTED_START_TIME_DESC)
            return max(r.run_count for r in runs if r.name.startswith("extract-registry"))

    import asyncio

    assert asyncio.run(extract_attempts()) >= 3  # the first try and two retries


def test_the_report_flow_writes_the_summary(
    prefect_harness: None, flawed_run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from flows.prefect_flows import report_flow

    settings, _ = flawed_run
    state = report_flow(
        period="week", warehouse=str(settings.warehouse), reports_dir=str(tmp_path),
        return_state=True,
    )  # fmt: skip
    assert state.is_completed()
    written = state.result()
    assert Path(written["html"]).parent == tmp_path / "weekly"
    assert Path(written["html"]).read_text().count('src="data:image/png;base64,') == 4
