"""Publication: the file BI tools open, replaced whole and atomically.

DuckDB allows one writing process or many reading ones on a file, never both, and BI tools
keep their read-only connections open. So the pipeline never writes the published file in
place: it writes a complete new database beside it, checkpoints and closes it, and renames it
over the old one (`os.replace`, atomic on POSIX). A reader that has the old file open keeps
its complete old snapshot; the next connection opens the new one. A reader never blocks a
run, never sees half a refresh, and no WAL is ever left next to the published file.
"""

from __future__ import annotations

import os
from pathlib import Path

from warehouse.store import StateStore, comment_columns

# What the published file carries besides the marts, for analysts and the summaries.
PUBLISHED_OPS = {
    "ops.pipeline_runs": "SELECT * FROM ops.pipeline_runs",
    "ops.validation_results": "SELECT * FROM ops.validation_results",
    "ops.stage_timings": "SELECT * FROM ops.stage_timings",
    "quarantine.rejected_rows": "SELECT * FROM quarantine.rejected_rows",
    # The newest data loaded from each source, for the summaries' "late sources".
    "ops.source_freshness": " UNION ALL ".join(
        f"SELECT '{source}' AS source, CAST(max({moment}) AS TIMESTAMP) AS newest_at "
        f"FROM core.{table}"
        for source, table, moment in [
            ("agent_performance", "fct_task_runs", "completed_at"),
            ("workflow_executions", "fct_workflow_runs", "updated_at"),
            ("agent_communications", "fct_messages", "updated_at"),
            ("business_metrics", "fct_business_metrics", "metric_date"),
            ("logs", "fct_heartbeats", "ts"),
        ]
    ),
}


def publish(store: StateStore, target: Path, run_id: str) -> Path:
    """Write every mart of the state database (and the run records) into a new file and swap
    it in for `target` in one atomic rename. Returns `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{run_id}.tmp")
    # What a run killed while publishing left behind (only one pipeline runs at a time: the
    # state database's lock sees to that).
    for leftover in target.parent.glob(f".{target.name}.*.tmp*"):
        leftover.unlink(missing_ok=True)
    con = store.con
    con.execute(f"ATTACH '{staging}' AS pub")
    try:
        con.execute("CREATE SCHEMA pub.marts")
        con.execute("CREATE SCHEMA pub.ops")
        con.execute("CREATE SCHEMA pub.quarantine")
        marts = [
            name
            for (name,) in con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_catalog = current_database() AND table_schema = 'marts' "
                "ORDER BY table_name"
            ).fetchall()
        ]
        for name in marts:
            con.execute(f"CREATE TABLE pub.marts.{name} AS SELECT * FROM marts.{name}")
            comment_columns(con, f"pub.marts.{name}", name)
        for table, sql in PUBLISHED_OPS.items():
            con.execute(f"CREATE TABLE pub.{table} AS {sql}")
        con.execute("CHECKPOINT pub")
    finally:
        con.execute("DETACH pub")
    _fsync(staging)
    os.replace(staging, target)
    _fsync(target.parent)
    return target


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
