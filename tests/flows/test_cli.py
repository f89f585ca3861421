"""The command line: `agentkpi run --full-refresh`, `agentkpi backfill`, `agentkpi quarantine`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from flows.cli import main
from tests.conftest import settings_for
from tests.support.compare import query_state
from warehouse.store import state_path_for


def _flags(platform: Path, warehouse: Path) -> list[str]:
    settings = settings_for(platform, warehouse)
    return [
        "--engine",
        "plain",
        "--quiet",
        "--db-url",
        settings.db_url,
        "--logs-dir",
        str(settings.logs_dir),
        "--warehouse",
        str(warehouse),
    ]


def _modes(warehouse: Path) -> list[str]:
    return query_state(
        warehouse,
        "SELECT run_mode FROM ops.pipeline_runs WHERE source = '*' ORDER BY run_started_at, "
        "run_finished_at",
    )["run_mode"].to_list()


def test_run_backfill_and_full_refresh_record_their_modes(
    flawed_platform: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    flags = _flags(flawed_platform, warehouse)
    assert main(["run", *flags]) == 0
    assert main(["run", *flags]) == 0
    assert main(["backfill", "--start", "2026-10-26", "--end", "2026-10-27", *flags]) == 0
    assert main(["run", "--full-refresh", *flags]) == 0
    assert _modes(warehouse) == ["full", "incremental", "backfill", "full"]


def test_a_backfill_range_that_ends_before_it_starts_is_refused(
    flawed_platform: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = _flags(flawed_platform, tmp_path / "warehouse.duckdb")
    assert main(["backfill", "--start", "2026-10-27", "--end", "2026-10-26", *flags]) == 1
    assert "2026-10-27 is after 2026-10-26" in capsys.readouterr().err


def test_quarantine_lists_what_is_held_by_source_and_rule(
    flawed_run, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    settings, _ = flawed_run
    assert main(["quarantine", "--warehouse", str(settings.warehouse)]) == 0
    out = capsys.readouterr().out
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    held = con.execute(
        "SELECT source, rule, count(*) FROM quarantine.rejected_rows GROUP BY ALL"
    ).fetchall()
    total = con.execute("SELECT count(*) FROM quarantine.rejected_rows").fetchone()[0]
    con.close()
    lines = out.splitlines()
    for source, rule, rows in held:
        assert any(line.split()[:3] == [source, rule, f"{rows:,}"] for line in lines), (
            source,
            rule,
        )
    assert lines[-1] == f"{total:,} rows held"


def test_a_run_while_another_process_holds_the_state_fails_with_one_line(
    flawed_platform: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    # Another process (another run, say) has the state open for writing.
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_OPEN, str(state_path_for(warehouse))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        assert main(["run", *_flags(flawed_platform, warehouse)]) == 1
    finally:
        holder.kill()
        holder.wait()
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("agentkpi run failed: state database: ")
    assert "lock" in line


HOLD_OPEN = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("open", flush=True)
time.sleep(120)
"""


def test_an_unexpected_error_fails_the_run_with_one_line(
    flawed_platform: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def disk_full(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device\n(and more)")

    monkeypatch.setattr("flows.pipeline.write_marts", disk_full)
    assert main(["run", *_flags(flawed_platform, tmp_path / "warehouse.duckdb")]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == "agentkpi run failed: OSError: [Errno 28] No space left on device"
