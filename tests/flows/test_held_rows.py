"""Rows naming an agent that the registry does not know yet wait in quarantine, and are
loaded by the first run after the registry knows the agent: the marts (and what stays in
quarantine) then equal those of a run that knew the agent from the start.

The flawed platform is copied without one of its agents; one run holds that agent's rows
(tasks, messages, workflows, log lines); the agent is registered again and the next,
incremental run must end where one run on the whole platform ends (the `flawed_run`
fixture).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import duckdb
import polars as pl
import pytest

from flows.pipeline import RunResult, run_pipeline
from flows.settings import Settings
from tests.conftest import RUN_STARTED_AT, settings_for
from tests.support.compare import assert_frames_match, published_marts, query_state
from warehouse.catalog import MART_KEYS

HELD_SOURCES = {"agent_performance", "agent_communications", "workflow_executions", "logs"}


def _quarantine(warehouse: Path) -> pl.DataFrame:
    return query_state(
        warehouse,
        "SELECT source, location, rule, agent_id, raw_payload FROM quarantine.rejected_rows",
    )


@pytest.fixture(scope="module")
def late_agent(
    flawed_platform: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Settings, str, pl.DataFrame, RunResult]:
    """(settings, the agent registered late, the quarantine before it was, the run after)."""
    root = tmp_path_factory.mktemp("late-agent")
    shutil.copytree(flawed_platform, root / "platform")
    db = sqlite3.connect(root / "platform" / "agents.db")
    agent, *rest = db.execute("SELECT * FROM agents ORDER BY agent_id LIMIT 1").fetchone()
    db.execute("DELETE FROM agents WHERE agent_id = ?", [agent])
    db.commit()
    settings = settings_for(root / "platform", root / "warehouse.duckdb")
    run_pipeline(settings, run_started_at=RUN_STARTED_AT)
    held = _quarantine(settings.warehouse)
    marks = ", ".join("?" for _ in [agent, *rest])
    db.execute(f"INSERT INTO agents VALUES ({marks})", [agent, *rest])
    db.commit()
    db.close()
    after = run_pipeline(settings, run_started_at=RUN_STARTED_AT)
    return settings, agent, held, after


def test_the_unknown_agents_rows_wait_in_quarantine(late_agent) -> None:  # type: ignore[no-untyped-def]
    _, agent, held, _ = late_agent
    ours = held.filter((pl.col("agent_id") == agent) & (pl.col("rule") == "unknown_agent"))
    assert set(ours["source"].unique()) == HELD_SOURCES


@pytest.mark.parametrize("mart", list(MART_KEYS))
def test_once_known_its_rows_make_the_marts_of_a_run_that_knew_it(
    late_agent, flawed_run, mart: str
) -> None:  # type: ignore[no-untyped-def]
    settings, _, _, _ = late_agent
    known_from_start, _ = flawed_run
    ours = published_marts(settings.warehouse)[mart]
    theirs = published_marts(known_from_start.warehouse)[mart]
    assert theirs.height > 0
    assert_frames_match(ours, theirs, MART_KEYS[mart])


def test_what_stays_in_quarantine_is_what_a_run_that_knew_it_holds(late_agent, flawed_run) -> None:  # type: ignore[no-untyped-def]
    settings, _, _, _ = late_agent
    known_from_start, _ = flawed_run
    columns = ["source", "location", "rule", "raw_payload"]
    ours = _quarantine(settings.warehouse).select(columns).sort(columns)
    theirs = _quarantine(known_from_start.warehouse).select(columns).sort(columns)
    assert theirs.filter(pl.col("rule") == "unknown_agent").height > 0  # never-registered ones
    assert ours.equals(theirs)


def test_the_run_that_loads_them_counts_them_as_read_from_quarantine(late_agent) -> None:  # type: ignore[no-untyped-def]
    _, _, held, after = late_agent
    released = held.filter(pl.col("rule") == "unknown_agent").group_by("source").len()
    for source, n in released.iter_rows():
        count = after.counts[source]
        assert count.from_quarantine == n, source
        assert count.read == count.loaded + count.duplicates + count.quarantined, count
    assert after.counts["agent_performance"].loaded > 0
    assert after.counts["logs"].loaded > 0


def test_the_run_record_keeps_the_rows_read_from_quarantine(late_agent) -> None:  # type: ignore[no-untyped-def]
    settings, _, _, after = late_agent
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    recorded = dict(
        con.execute(
            "SELECT source, rows_from_quarantine FROM ops.pipeline_runs WHERE run_id = ?",
            [after.run_id],
        ).fetchall()
    )
    con.close()
    assert recorded["*"] == sum(c.from_quarantine for c in after.counts.values()) > 0
