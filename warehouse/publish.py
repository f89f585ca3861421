"""Publication: the file BI tools open, replaced whole and atomically.

DuckDB allows one writing process or many reading ones on a file, never both, and BI tools
keep their read-only connections open. So the pipeline never writes the published file in
place: it writes a complete new database beside it, checkpoints and closes it, and renames it
over the old one (`os.replace`, atomic on POSIX). A reader that has the old file open keeps
its complete old snapshot; the next connection opens the new one. A reader never blocks a
run, never sees half a refresh, and no WAL is ever left next to the published file.

The new file is written in two steps. `write_marts` puts the marts in it while their checks
run (it is a file of its own, hidden by its name, so nothing reads it yet); `publish`, once
the checks passed, adds the run's records and swaps it in. `discard` drops it when they fail.

Nothing that only grows is copied whole each time: the run records (every check's result,
every stage's time: a few hundred rows an hour, millions after a year of hourly runs) nor the
marts (years of days). An incremental run starts its new file as a byte copy of the published
one, which nobody writes, adds the rows of the runs that file does not have yet, and deletes
and inserts only the mart rows that changed (so a mart's rows are in the order of its key
only up to the first rewritten one: order by the key when it matters); the small records are
replaced. A full refresh writes the file from nothing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from warehouse.store import StateStore, read_marts, update_marts, write_frame

# What the published file carries besides the marts, for analysts and the summaries.
# The tables that only grow, with the key of the rows a run adds at once: a new file takes
# over the published one's rows and adds the others.
GROWING_OPS = {"ops.validation_results": ["run_id"], "ops.stage_timings": ["run_id", "stage"]}
# And the moment a row of theirs was recorded, where they have one. Every row recorded before
# the published file was written is in it, so only rows recorded since its latest one (less a
# margin for the clock being set back) need looking for: the years before are not scanned.
# Should the counts then differ (a clock set back further, a file restored from a backup),
# every row is looked at.
RECORDED_AT = {"ops.validation_results": "validated_at", "ops.stage_timings": "recorded_at"}
CLOCK_SET_BACK_MARGIN = timedelta(days=1)
PUBLISHED_OPS = {
    "ops.pipeline_runs": "SELECT * FROM ops.pipeline_runs",
    "ops.validation_results": "SELECT * FROM ops.validation_results",
    "ops.stage_timings": "SELECT * FROM ops.stage_timings",
    "quarantine.rejected_rows": "SELECT * FROM quarantine.rejected_rows",
}
QUARANTINE = "quarantine.rejected_rows"
# The newest data loaded from each source, for the summaries' "late sources"
# (ops.source_freshness): source, core table, moment.
FRESHNESS_MOMENTS = [
    ("agent_performance", "fct_task_runs", "completed_at"),
    ("workflow_executions", "fct_workflow_runs", "updated_at"),
    ("agent_communications", "fct_messages", "updated_at"),
    ("business_metrics", "fct_business_metrics", "metric_date"),
    ("logs", "fct_heartbeats", "ts"),
]


def staging_path(target: Path, run_id: str) -> Path:
    """Where a run writes the file it will publish as `target`."""
    return target.with_name(f".{target.name}.{run_id}.tmp")


def write_marts(
    target: Path, run_id: str, marts: Mapping[str, pl.DataFrame], carry_over: bool = False
) -> Path:
    """Write the marts, with their column comments, into the new file that is to replace
    `target`; returns its path. With `carry_over`, the new file starts as a copy of `target`
    (for its growing run records; its marts are replaced). Its own connection: this may run
    beside the marts' checks."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_path(target, run_id)
    # What an earlier run killed before publishing left behind (only one pipeline runs at a
    # time: the state database's lock sees to that).
    for leftover in target.parent.glob(f".{target.name}.*.tmp*"):
        leftover.unlink(missing_ok=True)
    if carry_over and target.exists():
        # Published files are only ever renamed into place, never written: a byte copy is
        # a consistent one.
        shutil.copyfile(target, staging)
    con = _connect(staging)
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        # A copy gets only the rows that changed since it was published (an hourly run
        # recomputes a day, its week and its month, not years of rows).
        update_marts(con, read_marts(con), marts)
    finally:
        con.close()
    return staging


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    """Open the new file; a copy DuckDB cannot open is replaced by an empty file."""
    config = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    try:
        return duckdb.connect(str(path), config=config)
    except duckdb.Error:
        path.unlink(missing_ok=True)
        return duckdb.connect(str(path), config=config)


def discard(target: Path, run_id: str) -> None:
    """Drop the new file of a run that is not to be published, and its WAL (a run that
    failed while writing it, on a full disk say, leaves one)."""
    staging = staging_path(target, run_id)
    staging.unlink(missing_ok=True)
    staging.with_name(staging.name + ".wal").unlink(missing_ok=True)


def publish(store: StateStore, target: Path, run_id: str) -> Path:
    """Add the run records of the state database to the new file `write_marts` wrote, and swap
    it in for `target` in one atomic rename. Returns `target`."""
    staging = staging_path(target, run_id)
    if not staging.exists():
        raise FileNotFoundError(f"nothing to publish: {staging} was not written")
    con = store.con
    con.execute(f"ATTACH '{staging}' AS pub")
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS pub.ops")
        con.execute("CREATE SCHEMA IF NOT EXISTS pub.quarantine")
        changed = store.quarantine_changed()
        for table, sql in PUBLISHED_OPS.items():
            keys = GROWING_OPS.get(table)
            same_shape = _columns(con, f"pub.{table}") == _columns(con, table)
            if table == QUARANTINE and same_shape and changed is not None:
                _update_quarantine(con, changed)
                if _counts_by_source(con, f"pub.{table}") != _counts_by_source(con, table):
                    # Not the file the state last published (one restored from a backup, say).
                    con.execute(f"CREATE OR REPLACE TABLE pub.{table} AS {sql}")
            elif keys and same_shape:
                # Against the distinct keys published (one per run, not millions of rows).
                on = ", ".join(keys)
                since = _recorded_since(con, table)
                for where in (since, ""):
                    con.execute(
                        f"INSERT INTO pub.{table} SELECT * FROM ({sql}{where}) AS fresh "
                        f"ANTI JOIN (SELECT DISTINCT {on} FROM pub.{table}{where}) USING ({on})"
                    )
                    # Rows recorded before the margin (a clock set back further, a file
                    # restored from a backup) leave the counts apart: then look everywhere.
                    if _count(con, f"pub.{table}") == _count(con, table):
                        break
            else:
                con.execute(f"CREATE OR REPLACE TABLE pub.{table} AS {sql}")
        write_frame(
            con, "pub.ops.source_freshness", source_freshness(store, _published_freshness(con))
        )
        con.execute("CHECKPOINT pub")
    finally:
        con.execute("DETACH pub")
    _fsync(staging)
    os.replace(staging, target)
    _fsync(target.parent)
    # Only now: a run stopped before the swap leaves them noted for the next publication.
    store.quarantine_published()
    return target


def _update_quarantine(con: duckdb.DuckDBPyConnection, changed: list[str]) -> None:
    """Bring the new file's copy of the quarantine up to date: of each source, the rows of
    the runs it does not hold yet (a run's rows are all added before its file is published);
    the rows of the `changed` sources (some of theirs went, see StateStore.clear_rejected)
    copied whole."""
    table = QUARANTINE
    marks = ", ".join("?" for _ in changed)
    unchanged = f"s.source NOT IN ({marks})" if changed else "TRUE"
    con.execute(
        f"INSERT INTO pub.{table} SELECT s.* FROM {table} AS s WHERE {unchanged} AND NOT EXISTS "
        f"(SELECT 1 FROM pub.{table} AS p WHERE p.source = s.source AND p.run_id = s.run_id)",
        changed,
    )
    if changed:
        con.execute(f"DELETE FROM pub.{table} WHERE source IN ({marks})", changed)
        con.execute(
            f"INSERT INTO pub.{table} SELECT * FROM {table} WHERE source IN ({marks})", changed
        )


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]


def _counts_by_source(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, int]:
    return dict(con.execute(f"SELECT source, count(*) FROM {table} GROUP BY source").fetchall())


def _recorded_since(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """A WHERE clause keeping the rows of growing `table` recorded since the latest one
    published less the margin; none when the table has no such moment or nothing is
    published yet. The bound is written out: DuckDB's zone maps skip older row groups for a
    constant, not for a parameter of a prepared INSERT."""
    column = RECORDED_AT.get(table)
    if column is None:
        return ""
    latest = con.execute(f"SELECT max({column}) FROM pub.{table}").fetchone()[0]  # type: ignore[index]
    if latest is None:
        return ""
    return f" WHERE {column} >= TIMESTAMP '{(latest - CLOCK_SET_BACK_MARGIN).isoformat(sep=' ')}'"


def source_freshness(store: StateStore, published: dict[str, datetime]) -> pl.DataFrame:
    """Each source's newest moment in core (FRESHNESS_MOMENTS): source, newest_at.

    `published`: the moments last published, from which each is looked for first
    (`StateStore.newest`; exact either way)."""
    rows = [
        (source, store.newest(f"core.{table}", moment, since=published.get(source)))
        for source, table, moment in FRESHNESS_MOMENTS
    ]
    return pl.DataFrame(
        rows, schema={"source": pl.String, "newest_at": pl.Datetime("us")}, orient="row"
    )


def _published_freshness(con: duckdb.DuckDBPyConnection) -> dict[str, datetime]:
    """The moments in the new file's copy of ops.source_freshness, if it has one."""
    listed = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'pub' "
        "AND schema_name = 'ops' AND table_name = 'source_freshness'"
    ).fetchone()
    if not listed or not listed[0]:
        return {}
    rows = con.execute("SELECT source, newest_at FROM pub.ops.source_freshness").fetchall()
    return {source: newest for source, newest in rows if newest is not None}


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]] | None:
    """The (name, type) of each column of `table`, or None where there is no such table."""
    try:
        return [(name, kind) for name, kind, *_ in con.execute(f"DESCRIBE {table}").fetchall()]
    except duckdb.CatalogException:
        return None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
