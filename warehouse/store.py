"""The pipeline's working state: one DuckDB file beside the published warehouse.

It holds `core.*` (typed facts), `quarantine.*` (rejected input), `ops.*` (run records,
validation results, stage timings) and `marts.*` (the last good marts, which are published
from here). Only the pipeline opens it, and only one pipeline at a time: DuckDB's file lock
refuses a second writer, which is what we want.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from warehouse.catalog import COLUMN_COMMENTS, MART_KEYS, in_key_order

OPS_DDL = """
CREATE SCHEMA IF NOT EXISTS core;
CREATE SCHEMA IF NOT EXISTS marts;
CREATE SCHEMA IF NOT EXISTS ops;
CREATE SCHEMA IF NOT EXISTS quarantine;

CREATE TABLE IF NOT EXISTS ops.pipeline_runs (
    run_id VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_loaded BIGINT NOT NULL,
    rows_duplicate BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    rows_from_quarantine BIGINT NOT NULL DEFAULT 0,
    run_mode VARCHAR NOT NULL,
    run_status VARCHAR NOT NULL,
    run_started_at TIMESTAMP NOT NULL,
    run_finished_at TIMESTAMP,
    as_of TIMESTAMP,
    message VARCHAR,
    PRIMARY KEY (run_id, source)
);
-- (a state written before this column existed gains it)
ALTER TABLE ops.pipeline_runs ADD COLUMN IF NOT EXISTS rows_from_quarantine BIGINT DEFAULT 0;
COMMENT ON TABLE ops.pipeline_runs IS
    'one row per (run, source): rows_read = rows_loaded + rows_duplicate + rows_quarantined; '
    'rows_from_quarantine of rows_read were held rows read again (their agent became known); '
    'source ''*'' is the whole run';

CREATE TABLE IF NOT EXISTS ops.watermarks (
    source VARCHAR PRIMARY KEY,
    last_id BIGINT,
    last_updated_at TIMESTAMP,
    run_id VARCHAR NOT NULL,
    moved_at TIMESTAMP NOT NULL
);
COMMENT ON TABLE ops.watermarks IS
    'how far each source table has been read: the highest id, or the latest updated_at; '
    'moved in the same transaction as the rows they cover';

CREATE TABLE IF NOT EXISTS ops.id_gaps (
    source VARCHAR NOT NULL,
    id BIGINT NOT NULL,
    noticed_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL
);
COMMENT ON TABLE ops.id_gaps IS
    'ids below a source''s watermark that no read has returned yet (a row that PostgreSQL '
    'commits after a higher id did): every run looks for them again, until the first run '
    'that starts run.lookback_s after they were noticed has';

CREATE TABLE IF NOT EXISTS ops.log_files (
    path VARCHAR PRIMARY KEY,
    size_bytes BIGINT NOT NULL,
    checksum VARCHAR NOT NULL,
    lines BIGINT NOT NULL,
    copy_of VARCHAR,
    run_id VARCHAR NOT NULL,
    read_at TIMESTAMP NOT NULL
);
COMMENT ON TABLE ops.log_files IS
    'every log file read, with its checksum; copy_of names the file it repeats byte for byte '
    '(a file delivered twice adds nothing)';

CREATE TABLE IF NOT EXISTS ops.log_dirs (
    path VARCHAR PRIMARY KEY,
    mtime_ns BIGINT NOT NULL,
    has_subdirs BOOLEAN NOT NULL
);
COMMENT ON TABLE ops.log_dirs IS
    'each log directory as last listed: one whose mtime has not changed since (and that has '
    'no subdirectories) holds no new file and is not listed again';

CREATE TABLE IF NOT EXISTS ops.touched_days (
    kind VARCHAR NOT NULL,
    day DATE
);
COMMENT ON TABLE ops.touched_days IS
    'dates whose periods core changes have touched since the marts were last published '
    '(kind day), the first date of a change that touches every later period (onward), '
    'everything, or changed business figures or targets (business); emptied when the marts '
    'are published';

CREATE TABLE IF NOT EXISTS ops.stage_timings (
    run_id VARCHAR NOT NULL,
    stage VARCHAR NOT NULL,
    seconds DOUBLE NOT NULL,
    rows BIGINT,
    peak_rss_mb DOUBLE,
    recorded_at TIMESTAMP
);
-- (a state written before this column existed gains it: NULL for its rows)
ALTER TABLE ops.stage_timings ADD COLUMN IF NOT EXISTS recorded_at TIMESTAMP;

CREATE TABLE IF NOT EXISTS ops.validation_results (
    run_id VARCHAR NOT NULL,
    suite VARCHAR NOT NULL,
    table_name VARCHAR NOT NULL,
    expectation VARCHAR NOT NULL,
    column_name VARCHAR,
    success BOOLEAN NOT NULL,
    observed VARCHAR,
    details VARCHAR,
    validated_at TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS ops.alerts_notified (
    period_start DATE NOT NULL,
    agent_id VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,
    level VARCHAR NOT NULL,
    notified_at TIMESTAMP NOT NULL,
    was_sent BOOLEAN NOT NULL,
    PRIMARY KEY (period_start, agent_id, metric, level)
);
COMMENT ON TABLE ops.alerts_notified IS
    'marts.alerts rows already notified (was_sent) or passed over as too old to be news';

CREATE TABLE IF NOT EXISTS ops.agent_health_seen (
    agent_id VARCHAR PRIMARY KEY,
    is_healthy BOOLEAN,
    seen_at TIMESTAMP NOT NULL
);
COMMENT ON TABLE ops.agent_health_seen IS
    'each agent''s is_healthy at the last notification, to notify when it turns unhealthy';

CREATE TABLE IF NOT EXISTS quarantine.rejected_rows (
    run_id VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    location VARCHAR NOT NULL,
    rule VARCHAR NOT NULL,
    rule_check VARCHAR NOT NULL,
    agent_id VARCHAR,
    raw_payload VARCHAR,
    rejected_at TIMESTAMP NOT NULL
);
COMMENT ON TABLE quarantine.rejected_rows IS
    'bad input: one row per rejected row or log line, with the rule it broke and its raw payload';

CREATE TABLE IF NOT EXISTS ops.quarantine_changed (
    source VARCHAR
);
COMMENT ON TABLE ops.quarantine_changed IS
    'sources some of whose quarantined rows went since the file was last published (NULL: '
    'every source); publication copies their rows whole, and only the new rows of the others';
"""

QUARANTINE_COLUMNS = {
    "source": pl.String,
    "location": pl.String,
    "rule": pl.String,
    "rule_check": pl.String,
    "agent_id": pl.String,
    "raw_payload": pl.String,
}


def state_path_for(warehouse_path: Path) -> Path:
    """The working state file kept beside the published warehouse file."""
    return warehouse_path.with_name(warehouse_path.stem + ".state.duckdb")


# DuckDB's worker threads for the state database while stages run side by side.
STAGE_WORKERS = 1
# How many queries `query_all` runs at once.
QUERY_THREADS = 2


class StateStore:
    """The single writer of the pipeline's state database."""

    def __init__(self, path: Path, memory_limit: str = "1GB") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.con = duckdb.connect(
            str(path),
            config={
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                # DuckDB would otherwise cache up to 80% of RAM; beyond this it spills.
                "memory_limit": memory_limit,
                # The stages that write and read here run side by side, each with a
                # connection that its own thread drives (`sibling`), beside Polars' and the
                # source's threads: DuckDB's worker threads on top only took turns with
                # them. One worker: a 91-day full run took 12% less CPU and 6% less time,
                # a 3-year hourly run 0.4 s less CPU (interleaved runs, 2026-11-25).
                "threads": STAGE_WORKERS,
            },
        )
        self.con.execute(OPS_DDL)

    def close(self) -> None:
        """Checkpoint and close, so that no WAL is left behind."""
        self.checkpoint()
        self.con.close()

    def checkpoint(self) -> None:
        """Write what the WAL holds into the database file."""
        self.con.execute("CHECKPOINT")

    @contextmanager
    def sibling(self) -> Iterator[StateStore]:
        """Another connection to the same database, for a stage that runs beside this one
        in another thread: DuckDB runs their transactions side by side (a connection must
        not be shared between threads). Still one process, so still one writer."""
        other = object.__new__(StateStore)
        other.path = self.path
        other.con = self.con.cursor()
        try:
            yield other
        finally:
            other.con.close()

    @contextmanager
    def transaction(self, commit: bool = True) -> Iterator[None]:
        """Everything inside commits together or not at all. With `commit=False` the
        transaction stays open after the block, for `commit()` (or a rollback when the
        connection closes); an error inside still rolls it back."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        if commit:
            self.commit()

    # -- core -----------------------------------------------------------------------------

    def has_table(self, schema: str, table: str) -> bool:
        """Whether `schema.table` exists."""
        row = self.con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchone()
        return bool(row and row[0])

    def replace_table(self, schema: str, table: str, frame: pl.DataFrame) -> None:
        """Replace `schema.table` with the rows of `frame` (inside the caller's transaction)."""
        write_frame(self.con, f"{schema}.{table}", frame)

    def append_table(self, schema: str, table: str, frame: pl.DataFrame) -> None:
        """Append the rows of `frame` to `schema.table`, creating it from the frame's schema."""
        if frame.is_empty():
            if not self.has_table(schema, table):
                _create_empty(self.con, f"{schema}.{table}", frame, replace=False)
            return
        if self.has_table(schema, table):
            insert_frame(self.con, f"{schema}.{table}", frame)
            return
        with registered(self.con, "_incoming", frame):
            self.con.execute(f"CREATE TABLE {schema}.{table} AS SELECT * FROM _incoming")

    def rows_with_keys(self, schema: str, table: str, key: str, values: pl.Series) -> pl.DataFrame:
        """The rows of `schema.table` whose `key` is one of `values`."""
        with registered(self.con, "_keys", values.rename("k").to_frame()):
            return self.query(
                f"SELECT * FROM {schema}.{table} WHERE {key} IN (SELECT k FROM _keys)"
            )

    def delete_keys(self, schema: str, table: str, keys: pl.DataFrame) -> None:
        """Delete the rows of `schema.table` whose key columns (those of `keys`) equal one
        of the rows of `keys`."""
        delete_keys(self.con, f"{schema}.{table}", keys)

    def insert_new_events(self, table: str, frame: pl.DataFrame, key: list[str]) -> int:
        """Insert into `core.table` the events of `frame` whose key is not there yet, keeping
        of each key the copy with the lowest `read_order` (the copy read first). Returns the
        rows inserted. Only core rows within the frame's time range are probed: the table is
        appended in about time order, so DuckDB's zone maps skip the rest."""
        if frame.is_empty():
            return 0
        key = [k for k in key if k in frame.columns]  # a table of one event type has no `event`
        first = frame.sort("read_order").unique(subset=key, keep="first", maintain_order=True)
        lo, hi = first["ts"].min(), first["ts"].max()
        on = " AND ".join(f"c.{k} = i.{k}" for k in key)
        with registered(self.con, "_incoming", first.drop("read_order")):
            before = self.scalar(f"SELECT count(*) FROM core.{table}")
            self.con.execute(
                f"INSERT INTO core.{table} BY NAME SELECT i.* FROM _incoming i "
                f"WHERE NOT EXISTS (SELECT 1 FROM core.{table} c "
                f"WHERE c.ts BETWEEN ? AND ? AND {on})",
                [lo, hi],
            )
            after = self.scalar(f"SELECT count(*) FROM core.{table}")
        return int(after) - int(before)

    # -- watermarks and the log manifest --------------------------------------------------

    def watermark(self, source: str) -> tuple[int | None, datetime | None]:
        """(last id, last updated_at) read of a source table; (None, None) before any."""
        row = self.con.execute(
            "SELECT last_id, last_updated_at FROM ops.watermarks WHERE source = ?", [source]
        ).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def move_watermark(
        self,
        source: str,
        run_id: str,
        at: datetime,
        last_id: int | None = None,
        last_updated_at: datetime | None = None,
    ) -> None:
        """Record how far a source has been read (inside the transaction of its rows)."""
        self.con.execute(
            "INSERT OR REPLACE INTO ops.watermarks VALUES (?, ?, ?, ?, ?)",
            [source, last_id, last_updated_at, run_id, at],
        )

    def reset_watermarks(self, sources: list[str]) -> None:
        """Forget how far the given sources were read (a full refresh)."""
        for source in sources:
            self.con.execute("DELETE FROM ops.watermarks WHERE source = ?", [source])
            self.con.execute("DELETE FROM ops.id_gaps WHERE source = ?", [source])

    def id_gaps(self, source: str) -> list[int]:
        """The ids of `source` skipped by a later id and not read since."""
        rows = self.con.execute(
            "SELECT id FROM ops.id_gaps WHERE source = ? ORDER BY id", [source]
        ).fetchall()
        return [row[0] for row in rows]

    def forget_id_gaps(
        self, source: str, noticed_before: datetime, run_id: str, below: int | None
    ) -> None:
        """Forget the gaps of `source` noticed before `noticed_before`, and those that run
        `run_id` noted at or below `below`."""
        self.con.execute(
            "DELETE FROM ops.id_gaps WHERE source = ? "
            "AND (noticed_at < ? OR (run_id = ? AND id <= ?))",
            [source, noticed_before, run_id, below],
        )

    def move_id_gaps(
        self, source: str, read: pl.Series, skipped: pl.Series, at: datetime, run_id: str
    ) -> None:
        """Forget the gaps of `source` that the ids `read` fill, and note those `skipped`
        (inside the transaction of the rows read)."""
        if not read.is_empty():
            with registered(self.con, "_read", read.rename("id").to_frame()):
                self.con.execute(
                    "DELETE FROM ops.id_gaps WHERE source = ? AND id IN (SELECT id FROM _read)",
                    [source],
                )
        if not skipped.is_empty():
            noted = skipped.rename("id").to_frame()
            insert_frame(
                self.con,
                "ops.id_gaps",
                noted.select(
                    pl.lit(source).alias("source"),
                    "id",
                    pl.lit(at).alias("noticed_at"),
                    pl.lit(run_id).alias("run_id"),
                ),
            )

    def log_files_read(self, paths: Sequence[str]) -> set[str]:
        """Those of `paths` (relative to the logs directory) read before."""
        if not paths:
            return set()
        wanted = pl.Series(paths, dtype=pl.String)
        return set(self.rows_with_keys("ops", "log_files", "path", wanted)["path"].to_list())

    def log_texts_read(self, checksums: Sequence[str]) -> dict[str, str]:
        """For those of `checksums` whose text was read before: checksum → the path of the
        file it was first read from (a copy's entry names that file in `copy_of`)."""
        if not checksums:
            return {}
        with registered(self.con, "_keys", pl.Series("k", checksums, dtype=pl.String).to_frame()):
            rows = self.con.execute(
                "SELECT checksum, min(coalesce(copy_of, path)) FROM ops.log_files "
                "WHERE checksum IN (SELECT k FROM _keys) GROUP BY checksum"
            ).fetchall()
        return dict(rows)

    def has_read_log_files(self) -> bool:
        """Whether any log file was read before (the manifest is not empty)."""
        return bool(self.scalar("SELECT count(*) FROM ops.log_files"))

    def add_log_files(self, files: pl.DataFrame) -> None:
        """Record log files as read (inside the transaction of their events)."""
        self.append_table("ops", "log_files", files)

    def clear_log_manifest(self) -> None:
        """Forget every log file read, and every directory listed (a full refresh)."""
        self.con.execute("DELETE FROM ops.log_files")
        self.con.execute("DELETE FROM ops.log_dirs")

    def log_dirs(self) -> dict[str, tuple[int, bool]]:
        """Each log directory as last listed: relative path → (mtime_ns, has_subdirs)."""
        rows = self.con.execute("SELECT path, mtime_ns, has_subdirs FROM ops.log_dirs").fetchall()
        return {path: (mtime, subdirs) for path, mtime, subdirs in rows}

    def replace_log_dirs(self, dirs: pl.DataFrame) -> None:
        """Remember how the log directories looked when listed (after their files are read)."""
        self.con.execute("DELETE FROM ops.log_dirs")
        self.append_table("ops", "log_dirs", dirs)

    def drop_stage(self) -> None:
        """Drop the `stage` schema of earlier versions (rows now load straight into core)."""
        self.con.execute("DROP SCHEMA IF EXISTS stage CASCADE")

    def query(self, sql: str, params: list | None = None) -> pl.DataFrame:
        """A query's result as a Polars frame."""
        return self.con.execute(sql, params or []).pl()

    def query_all(self, queries: Sequence[tuple[str, list]]) -> list[pl.DataFrame]:
        """The results of several (sql, params) queries, in their order, run side by side on
        sibling connections: DuckDB reads and converts one while the other's result is
        converted, so two cores work. Sees what is committed (not this connection's open
        transaction)."""

        def run(query: tuple[str, list]) -> pl.DataFrame:
            with self.sibling() as own:
                return own.query(*query)

        with ThreadPoolExecutor(max_workers=QUERY_THREADS, thread_name_prefix="query") as pool:
            return list(pool.map(run, queries))

    def scalar(self, sql: str, params: list | None = None) -> object:
        """The first column of the first row of a query."""
        row = self.con.execute(sql, params or []).fetchone()
        return row[0] if row else None

    def newest(self, table: str, column: str, since: datetime | None = None) -> datetime | None:
        """The latest moment in `column` of `table` (a schema-qualified name), as a timestamp;
        None for an empty column.

        `since`: a moment the latest is likely not before (what was last seen). The rows from
        it on are asked first, which zone maps answer from a few row groups (a whole column's
        maximum costs a scan once the table has changed since its checkpoint); only where
        there are none is the whole column asked. Either way the answer is exact."""
        latest = f"SELECT CAST(max({column}) AS TIMESTAMP) FROM {table}"
        value = None
        if since is not None:
            value = self.scalar(f"{latest} WHERE {column} >= ?", [since])
        if value is None:
            value = self.scalar(latest)
        return value if isinstance(value, datetime) else None

    # -- quarantine and run records -------------------------------------------------------

    def add_rejected(self, run_id: str, rejected_at: datetime, rows: pl.DataFrame) -> None:
        """Keep rejected input with its rule and raw payload."""
        if rows.is_empty():
            return
        frame = rows.select(
            pl.lit(run_id).alias("run_id"),
            *[pl.col(c).cast(t) for c, t in QUARANTINE_COLUMNS.items()],
            pl.lit(rejected_at).alias("rejected_at"),
        )
        insert_frame(self.con, "quarantine.rejected_rows", frame)

    # Every quarantined row that goes, goes through these methods: they note its source in
    # ops.quarantine_changed (in the caller's transaction), for publication.

    def clear_rejected(self, sources: list[str] | None = None) -> None:
        """Forget the quarantined rows of the given sources, or of all (a full refresh
        re-reads them)."""
        if sources is None:
            self._forget_rejected("TRUE", [], None)
            return
        for source in sources:
            self._forget_rejected("source = ?", [source], source)

    def forget_rejected(self, source: str, locations: pl.Series) -> None:
        """Drop quarantined rows of a source at the given locations (rows read again)."""
        if locations.is_empty():
            return
        with registered(self.con, "_locations", locations.rename("location").to_frame()):
            self._forget_rejected(
                "source = ? AND location IN (SELECT location FROM _locations)", [source], source
            )

    def release_rejected(self, rule: str) -> pl.DataFrame:
        """Take the quarantined rows held for `rule` out of the quarantine: their source,
        location and raw payload."""
        held = self.query(
            "SELECT source, location, raw_payload FROM quarantine.rejected_rows WHERE rule = ?",
            [rule],
        )
        for source in held["source"].unique().to_list():
            self._forget_rejected("source = ? AND rule = ?", [source, rule], source)
        return held

    def _forget_rejected(self, where: str, params: list[object], source: str | None) -> None:
        gone = self.con.execute(
            f"DELETE FROM quarantine.rejected_rows WHERE {where}", params
        ).fetchone()
        if gone and gone[0]:
            self.con.execute("INSERT INTO ops.quarantine_changed VALUES (?)", [source])

    def quarantine_changed(self) -> list[str] | None:
        """The sources noted by the methods above since `quarantine_published`; None when
        every source's rows went."""
        sources = [
            s
            for (s,) in self.con.execute(
                "SELECT DISTINCT source FROM ops.quarantine_changed"
            ).fetchall()
        ]
        return None if None in sources else sorted(sources)

    def quarantine_published(self) -> None:
        """The published file holds the quarantine as it is: forget the changed sources."""
        self.con.execute("DELETE FROM ops.quarantine_changed")

    def record_run(self, rows: pl.DataFrame) -> None:
        """Write a run's per-source records (ops.pipeline_runs)."""
        insert_frame(self.con, "ops.pipeline_runs", rows)

    def record_timings(self, rows: pl.DataFrame, at: datetime | None = None) -> None:
        """Write a run's stage timings (ops.stage_timings), recorded `at` (by default now,
        UTC): publication looks for the rows recorded since it last published."""
        if rows.is_empty():
            return
        recorded_at = pl.lit(at or datetime.now(UTC).replace(tzinfo=None), pl.Datetime("us"))
        insert_frame(
            self.con, "ops.stage_timings", rows.with_columns(recorded_at.alias("recorded_at"))
        )

    def record_validation(self, rows: pl.DataFrame) -> None:
        """Keep every validation result (ops.validation_results)."""
        if rows.is_empty():
            return
        insert_frame(self.con, "ops.validation_results", rows)

    # -- marts ----------------------------------------------------------------------------

    def replace_marts(
        self,
        marts: Mapping[str, pl.DataFrame],
        current: Mapping[str, pl.DataFrame] | None = None,
    ) -> None:
        """Make every mart hold the rows of `marts`, in one transaction; the touched dates
        they now cover are forgotten in the same transaction. `current`: what the marts
        hold now, when the caller has read it already.

        Only the rows that changed are deleted and inserted: an hourly run recomputes a day,
        its week and its month, and rewriting years of unchanged rows would cost more than
        the rest of its publication (a commit that checkpoints them). A mart that is new, or
        whose columns changed, is replaced whole, with its column comments."""
        self.prepare_marts(marts, current)
        self.commit()

    def prepare_marts(
        self,
        marts: Mapping[str, pl.DataFrame],
        current: Mapping[str, pl.DataFrame] | None = None,
    ) -> None:
        """`replace_marts` up to its COMMIT: the work is done in a transaction left open,
        which `commit()` makes count (closing the connection without it rolls it back). A
        run prepares the new marts while their checks run, and commits them once they pass."""
        if current is None:
            current = self.marts()
        with self.transaction(commit=False):
            update_marts(self.con, current, marts)
            self.con.execute("DELETE FROM ops.touched_days")

    def commit(self) -> None:
        """Commit the open transaction."""
        self.con.execute("COMMIT")

    def add_touched(self, rows: pl.DataFrame) -> None:
        """Remember dates core changes touched (inside the transaction of the changes)."""
        self.append_table("ops", "touched_days", rows)

    def touched(self) -> pl.DataFrame:
        """Every touched date not yet covered by published marts."""
        return self.query("SELECT kind, day FROM ops.touched_days")

    # -- notifications ---------------------------------------------------------------------

    def alerts_not_notified(self) -> pl.DataFrame:
        """Rows of marts.alerts not notified yet (nor passed over)."""
        if not self.has_table("marts", "alerts"):
            return pl.DataFrame()
        return self.query(
            "SELECT a.* FROM marts.alerts a ANTI JOIN ops.alerts_notified n "
            "USING (period_start, agent_id, metric, level) "
            "ORDER BY a.period_start, a.level, a.agent_id, a.metric"
        )

    def turned_unhealthy(self) -> pl.DataFrame:
        """Rows of marts.agent_health that are unhealthy now and were not at the last
        notification (or were not seen then)."""
        if not self.has_table("marts", "agent_health"):
            return pl.DataFrame()
        return self.query(
            "SELECT h.* FROM marts.agent_health h LEFT JOIN ops.agent_health_seen s "
            "USING (agent_id) WHERE NOT h.is_healthy AND s.is_healthy IS DISTINCT FROM false "
            "ORDER BY h.agent_id"
        )

    def record_notified(
        self, alerts: pl.DataFrame, sent: pl.Series, at: datetime, health_seen: bool
    ) -> None:
        """Remember the given alerts as notified (`sent`: delivered, else passed over) and,
        with `health_seen`, every agent's current is_healthy."""
        with self.transaction():
            if alerts.height:
                rows = alerts.select(
                    "period_start", "agent_id", "metric", "level",
                    pl.lit(at).alias("notified_at"), sent.alias("was_sent"),
                )  # fmt: skip
                with registered(self.con, "_notified", rows):
                    self.con.execute(
                        "INSERT OR REPLACE INTO ops.alerts_notified BY NAME SELECT * FROM _notified"
                    )
            if health_seen and self.has_table("marts", "agent_health"):
                self.con.execute("DELETE FROM ops.agent_health_seen")
                self.con.execute(
                    "INSERT INTO ops.agent_health_seen "
                    "SELECT agent_id, is_healthy, ? FROM marts.agent_health",
                    [at],
                )

    def marts(self) -> dict[str, pl.DataFrame]:
        """The last good marts, each in the order of its key."""
        return read_marts(self.con)


def update_marts(
    con: duckdb.DuckDBPyConnection,
    current: Mapping[str, pl.DataFrame],
    marts: Mapping[str, pl.DataFrame],
) -> None:
    """Make the marts of `con`, which hold `current`, hold `marts` (inside the caller's
    transaction): only the rows that changed are deleted and inserted. A mart that is new,
    or whose columns changed, is written whole with its column comments; one no longer
    built is dropped."""
    for name in sorted(set(current) - set(marts)):
        con.execute(f"DROP TABLE marts.{name}")
    for name, frame in sorted(marts.items()):
        before = current.get(name)
        if before is None or before.schema != frame.schema:
            write_frame(con, f"marts.{name}", frame)
            comment_columns(con, f"marts.{name}", name)
            continue
        stale, added = changed_rows(before, frame, MART_KEYS[name])
        delete_keys(con, f"marts.{name}", stale)
        if added.height:
            insert_frame(con, f"marts.{name}", added)


def read_marts(con: duckdb.DuckDBPyConnection) -> dict[str, pl.DataFrame]:
    """Every table of schema `marts` of `con`'s database, each in the order of its key
    (rows rewritten by `update_marts` lie at the end of their table)."""
    names = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'marts'"
    ).fetchall()
    return {name: con.execute(in_key_order(name)).pl() for (name,) in names}


def delete_keys(con: duckdb.DuckDBPyConnection, qualified: str, keys: pl.DataFrame) -> None:
    """Delete the rows of table `qualified` whose key columns (those of `keys`) equal one of
    the rows of `keys`."""
    if keys.is_empty():
        return
    on = " AND ".join(f't."{c}" = k."{c}"' for c in keys.columns)
    with registered(con, "_keys", keys):
        con.execute(f"DELETE FROM {qualified} AS t USING _keys AS k WHERE {on}")


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> Iterator[None]:
    """Inside the block, `frame` is visible to `con`'s SQL as the table `name`."""
    con.register(name, frame)
    try:
        yield
    finally:
        con.unregister(name)


def insert_frame(con: duckdb.DuckDBPyConnection, qualified: str, frame: pl.DataFrame) -> None:
    """Insert the rows of `frame` into the existing table `qualified`, by column name."""
    with registered(con, "_incoming", frame):
        con.execute(f"INSERT INTO {qualified} BY NAME SELECT * FROM _incoming")


def changed_rows(
    before: pl.DataFrame, after: pl.DataFrame, keys: Sequence[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """What turns a table holding `before` into one holding `after` (same columns, `keys`
    unique in each): the keys of the rows to delete (those that changed or went), and the
    rows to insert (those that changed or came)."""
    columns = list(after.columns)
    gone = before.join(after, on=columns, how="anti", nulls_equal=True)
    added = after.join(before, on=columns, how="anti", nulls_equal=True)
    return gone.select(keys), added


def write_frame(con: duckdb.DuckDBPyConnection, qualified: str, frame: pl.DataFrame) -> None:
    """Create or replace the table `qualified` with the rows of `frame`."""
    if frame.is_empty():
        _create_empty(con, qualified, frame, replace=True)
        return
    with registered(con, "_incoming", frame):
        con.execute(f"CREATE OR REPLACE TABLE {qualified} AS SELECT * FROM _incoming")


def _create_empty(
    con: duckdb.DuckDBPyConnection, qualified: str, frame: pl.DataFrame, replace: bool
) -> None:
    # DuckDB 1.5.5 loses the large appends that follow, in the same transaction, an
    # append from an empty Arrow scan (tests/warehouse/test_store.py shows it): an
    # empty table is made from a one-row frame, LIMIT 0, never from an empty scan.
    with registered(con, "_shape", frame.clear(1)):
        verb = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE"
        con.execute(f"{verb} {qualified} AS SELECT * FROM _shape LIMIT 0")


def comment_columns(con: duckdb.DuckDBPyConnection, qualified: str, mart: str) -> None:
    """Put each mart column's definition and unit on it as a column comment."""
    from warehouse.catalog import MART_GRAINS

    comments = COLUMN_COMMENTS.get(mart, {})
    columns = [row[0] for row in con.execute(f"DESCRIBE {qualified}").fetchall()]
    statements = [f"COMMENT ON TABLE {qualified} IS {_quote(MART_GRAINS.get(mart, ''))}"] + [
        f"COMMENT ON COLUMN {qualified}.{column} IS {_quote(comments[column])}"
        for column in columns
        if column in comments
    ]
    # One call for them all: each call waits for the GIL, which other threads may hold.
    con.execute(";\n".join(statements))


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
