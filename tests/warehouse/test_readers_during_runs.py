"""BI tools keep querying while incremental runs publish: nothing fails, nothing mixes.

Three real reader processes query the published file in a loop while several runs happen: a
Python `duckdb` read-only connection reconnecting for every query, another held open
throughout, the `duckdb` CLI (a new process per query), and SQLAlchemy with duckdb_engine
as Superset uses it. Every answer must satisfy an invariant that a mix of two runs would
break: each period's department rows sum to its system row, and the row count of
`ops.pipeline_runs` matches the runs that the file's own run records name.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from flows.pipeline import run_pipeline
from tests.conftest import RUN_STARTED_AT, settings_for
from tests.support.replay import Replay

DUCKDB_CLI = Path(sys.executable).parent / "duckdb"

# One query, one row: (mismatched periods, distinct runs recorded, latest run id).
CHECK = """
WITH parts AS (
    SELECT period, period_start, sum(tasks_total) AS tasks
    FROM marts.department_kpis GROUP BY ALL
)
SELECT
    (SELECT count(*) FROM parts JOIN marts.system_kpis s USING (period, period_start)
     WHERE parts.tasks <> s.tasks_total) AS mismatches,
    (SELECT count(DISTINCT run_id) FROM ops.pipeline_runs) AS runs,
    (SELECT run_id FROM ops.pipeline_runs WHERE source = '*'
     ORDER BY run_finished_at DESC LIMIT 1) AS latest
""".strip()

PYTHON_READER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import duckdb
    path, stop, check, mode = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    answers, errors = [], []
    con = duckdb.connect(path, read_only=True)
    while not stop.exists():
        try:
            if mode == "reconnect":
                # DuckDB shares one database instance per file within a process: only a
                # process with no connection left open to the old file opens the new one.
                con.close()
                con = duckdb.connect(path, read_only=True)
            answers.append(list(con.execute(check).fetchone()))
        except Exception as error:
            errors.append(f"{type(error).__name__}: {error}")
        time.sleep(0.05)
    print(json.dumps({"answers": answers, "errors": errors}))
    """
)

SQLALCHEMY_READER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import sqlalchemy
    path, stop, check = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    answers, errors = [], []
    while not stop.exists():
        engine = sqlalchemy.create_engine(
            "duckdb:///" + path, connect_args={"read_only": True}
        )
        try:
            with engine.connect() as con:
                answers.append(list(con.execute(sqlalchemy.text(check)).one()))
        except Exception as error:
            errors.append(f"{type(error).__name__}: {error}")
        finally:
            engine.dispose()
        time.sleep(0.05)
    print(json.dumps({"answers": answers, "errors": errors}))
    """
)

CLI_READER = textwrap.dedent(
    """
    import json, subprocess, sys, time
    from pathlib import Path
    cli, path, stop, check = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
    answers, errors = [], []
    while not stop.exists():
        out = subprocess.run([cli, "-readonly", "-json", path, check],
                             capture_output=True, text=True)
        if out.returncode:
            errors.append(out.stderr.strip())
        else:
            row = json.loads(out.stdout)[0]
            answers.append([row["mismatches"], row["runs"], row["latest"]])
        time.sleep(0.05)
    print(json.dumps({"answers": answers, "errors": errors}))
    """
)


def test_readers_in_other_processes_are_never_disturbed_by_runs(
    flawed_platform: Path, tmp_path: Path
) -> None:
    batches = 3
    replay = Replay(flawed_platform, tmp_path / "platform", batches)
    settings = settings_for(tmp_path / "platform", tmp_path / "warehouse.duckdb")
    replay.deliver(0)
    run_pipeline(settings, run_started_at=RUN_STARTED_AT)
    stop = tmp_path / "stop"
    warehouse = str(settings.warehouse)
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", PYTHON_READER, warehouse, str(stop), CHECK, mode],
            stdout=subprocess.PIPE,
            text=True,
        )
        for mode in ("reconnect", "hold")
    ] + [
        subprocess.Popen(
            [sys.executable, "-c", SQLALCHEMY_READER, warehouse, str(stop), CHECK],
            stdout=subprocess.PIPE,
            text=True,
        ),
        subprocess.Popen(
            [sys.executable, "-c", CLI_READER, str(DUCKDB_CLI), warehouse, str(stop), CHECK],
            stdout=subprocess.PIPE,
            text=True,
        ),
    ]
    try:
        results = []
        for k in range(1, batches):
            replay.deliver(k)
            results.append(run_pipeline(settings, run_started_at=RUN_STARTED_AT))
    finally:
        stop.touch()
        reports = [json.loads(reader.communicate(timeout=120)[0]) for reader in readers]
    assert [r.status for r in results] == ["succeeded"] * (batches - 1)
    names = ["duckdb reconnecting", "duckdb held open", "sqlalchemy", "cli"]
    for name, report in zip(names, reports, strict=True):
        assert report["errors"] == [], name
        assert report["answers"], name
        assert all(mismatches == 0 for mismatches, _, _ in report["answers"]), name
        # Each answer comes from one complete run's file: the latest run it records always
        # comes with the same number of runs recorded.
        seen = {(runs, latest) for _, runs, latest in report["answers"]}
        assert len({latest for _, latest in seen}) == len(seen), (name, seen)
    # The readers that reconnect saw the refreshes happen; the one held open kept its snapshot.
    for report in (reports[0], reports[2], reports[3]):
        assert len({latest for _, _, latest in report["answers"]}) >= 2
    assert len({latest for _, _, latest in reports[1]["answers"]}) == 1
