"""Schedules and deployments against a real `prefect server start` on loopback, with its own
PREFECT_HOME: `agentkpi serve` registers the four deployments with active schedules; the
pipeline triggered through Prefect's client runs to completion with its logs; a restart of the
serve process leaves the schedules active; `prefect.yaml` deploys the same four to a work pool.

Everything talking to that server runs in child processes, so that this test session's own
temporary Prefect server (prefect_harness) is not touched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = pytest.mark.prefect

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEPLOYMENTS = {
    "agentkpi-pipeline/hourly": "5 * * * *",
    "agentkpi-report/daily-report": "0 6 * * *",
    "agentkpi-report/weekly-report": "0 6 * * 1",
    "agentkpi-report/monthly-report": "0 6 1 * *",
}


def _wait(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"gave up waiting for {what} after {timeout_s:.0f} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, free_tcp_port_factory) -> Iterator[dict]:  # type: ignore[no-untyped-def]
    """A real Prefect server; yields the environment that points at it."""
    home = tmp_path_factory.mktemp("prefect-server-home")
    port = free_tcp_port_factory()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
        "DO_NOT_TRACK": "1",
    }
    log = (home / "server.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port),
         "--no-ui", "--analytics-off"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        _wait(healthy, 180, "the Prefect server")
        yield env
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()


_CLIENT = """
import asyncio, json, sys
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter, DeploymentFilterId, FlowRunFilter, FlowRunFilterId, LogFilter,
    LogFilterFlowRunId, FlowRunFilterState, FlowRunFilterStateType)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort, LogSort
from prefect.deployments import run_deployment

async def main(what, names):
    async with get_client() as client:
        out = {}
        for name in names:
            d = await client.read_deployment_by_name(name)
            scheduled = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[d.id])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=10,
            )
            out[name] = {
                "paused": d.paused,
                "crons": [s.schedule.cron for s in d.schedules if s.active],
                "next_runs": sorted(str(r.expected_start_time) for r in scheduled),
                "work_pool": d.work_pool_name,
            }
        if what == "run":
            run = await run_deployment(names[0], timeout=600, parameters={})
            for _ in range(60):  # logs reach the server in batches, after the run
                logs = await client.read_logs(log_filter=LogFilter(
                    flow_run_id=LogFilterFlowRunId(any_=[run.id])), limit=200, offset=0,
                    sort=LogSort.TIMESTAMP_ASC)
                if any("stage publish took" in l.message for l in logs):
                    break
                await asyncio.sleep(1)
            out["run"] = {"state": run.state.type.value, "logs": [l.message for l in logs]}
        print(json.dumps(out))

asyncio.run(main(sys.argv[1], sys.argv[2:]))
"""


def _run_client(env: dict, what: str, names: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _CLIENT, what, *names],
        env=env, capture_output=True, text=True, timeout=900, cwd=REPO,
    )  # fmt: skip


def _client(env: dict, what: str, names: list[str]) -> dict:
    done = _run_client(env, what, names)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextmanager
def _serving(env: dict, flawed_platform: Path, warehouse: Path, log: Path) -> Iterator[None]:
    """`agentkpi serve` in a child process, from when its deployments are registered until
    it is stopped (SIGINT, as a terminal or systemd would)."""
    process = subprocess.Popen(
        [str(BIN / "agentkpi"), "serve",
         "--db-url", "sqlite:///" + str((flawed_platform / "agents.db").resolve()),
         "--logs-dir", str(flawed_platform / "logs"), "--warehouse", str(warehouse)],
        env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=warehouse.parent,
    )  # fmt: skip
    try:
        _wait(
            lambda: _run_client(env, "read", list(DEPLOYMENTS)).returncode == 0,
            240,
            f"the deployments of agentkpi serve ({log.name})",
        )
        yield
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_serve_runs_the_pipeline_on_demand_and_keeps_its_schedules(
    server: dict, flawed_platform: Path, tmp_path: Path
) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    with _serving(server, flawed_platform, warehouse, tmp_path / "serve.log"):
        seen = _client(server, "run", list(DEPLOYMENTS))
    assert seen["run"]["state"] == "COMPLETED", (tmp_path / "serve.log").read_text()[-3000:]
    assert any("stage extract_database took" in m for m in seen["run"]["logs"])
    assert any("logs: read" in m for m in seen["run"]["logs"])
    assert warehouse.exists()
    for name, cron in DEPLOYMENTS.items():
        assert seen[name]["crons"] == [cron] and seen[name]["paused"] is False, name
    hourly = "agentkpi-pipeline/hourly"
    _wait(lambda: _client(server, "read", [hourly])[hourly]["next_runs"], 120, "its next runs")
    next_runs = _client(server, "read", [hourly])[hourly]["next_runs"]
    assert all(run[14:16] == "05" for run in next_runs), next_runs  # minute 5 of each hour

    # Stopped and started again: the schedules are still active, not paused.
    after_stop = _client(server, "read", list(DEPLOYMENTS))
    assert all(after_stop[name]["paused"] is False for name in DEPLOYMENTS)
    with _serving(server, flawed_platform, warehouse, tmp_path / "serve-again.log"):
        restarted = _client(server, "read", list(DEPLOYMENTS))
    assert all(restarted[name]["paused"] is False for name in DEPLOYMENTS)
    assert all(restarted[name]["crons"] == [cron] for name, cron in DEPLOYMENTS.items())


def test_prefect_yaml_deploys_the_same_deployments_to_a_work_pool(server: dict) -> None:
    env = {**server, "AGENTKPI_HOME": str(REPO)}
    for command in (
        [str(BIN / "prefect"), "work-pool", "create", "agentkpi", "--type", "process",
         "--overwrite"],
        [str(BIN / "prefect"), "--no-prompt", "deploy", "--all"],
    ):  # fmt: skip
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, cwd=REPO, timeout=300
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    seen = _client(env, "read", list(DEPLOYMENTS))
    for name, cron in DEPLOYMENTS.items():
        assert seen[name]["crons"] == [cron], name
        assert seen[name]["work_pool"] == "agentkpi"
