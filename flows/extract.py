"""Extract: read the platform's raw data as it is, flaws included.

The operational tables are read through DuckDB from the database URL, every column as text
(so that a REAL column holding 'abc' reaches the row rules instead of failing the read).
The log files are decoded with an explicit schema; a file with a line the fast decoder cannot
take (not JSON, a value of the wrong type) is decoded line by line, so that every bad line is
kept with its file and line number.
"""

from __future__ import annotations

import atexit
import collections
import gzip
import hashlib
import io
import json
import math
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlparse

import duckdb
import numpy as np
import orjson
import polars as pl
import pyarrow as pa

# The columns of each operational table, as contract/sources.md declares them.
SOURCE_TABLES: dict[str, list[str]] = {
    "agents": [
        "agent_id",
        "agent_class",
        "department",
        "deployed_at",
        "deployment_status",
        "hourly_cost_usd",
    ],
    "agent_performance": [
        "id",
        "agent_id",
        "department",
        "task_type",
        "execution_time",
        "success_rate",
        "timestamp",
    ],
    "workflow_executions": [
        "workflow_id",
        "workflow_name",
        "initiator_agent_id",
        "participant_agent_ids",
        "started_at",
        "completed_at",
        "status",
        "errors",
        "errors_recovered",
        "updated_at",
    ],
    "agent_communications": [
        "id",
        "message_id",
        "sender_agent_id",
        "receiver_agent_id",
        "message_type",
        "sent_at",
        "received_at",
        "responded_at",
        "status",
        "updated_at",
    ],
    "business_metrics": ["id", "metric_date", "department", "metric_name", "value", "recorded_at"],
    "business_targets": ["metric_name", "period_start", "period_end", "target_value"],
}
OPTIONAL_TABLES = {"business_targets"}

# One log event as decoded: the contract's fields with their types; unknown fields ignored.
LOG_FIELDS: dict[str, pl.DataType] = {
    "ts": pl.String,
    "agent_id": pl.String,
    "event": pl.String,
    "status": pl.String,
    "task_queue": pl.Int64,
    "message_queue": pl.Int64,
    "current_task_type": pl.String,
    "cpu_pct": pl.Float64,
    "memory_mb": pl.Float64,
    "task_type": pl.String,
    "error_type": pl.String,
    "message": pl.String,
}
# Each event type's own fields; every event has ts, agent_id and event besides. A field of
# another event type is one of the "unknown extra fields" the contract ignores: a value of
# the wrong type there is NULL, not an error. An event of another type has only the three.
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "heartbeat": ("status", "task_queue", "message_queue", "current_task_type"),
    "resource": ("cpu_pct", "memory_mb"),
    "error": ("task_type", "error_type", "message"),
}
COMMON_FIELDS = ("ts", "agent_id", "event")
LOG_LINE_COLUMNS: dict[str, pl.DataType] = {
    "file": pl.String,
    "line_no": pl.Int64,
    "parse_error": pl.String,
    **LOG_FIELDS,
}
LOG_SUFFIXES = (".jsonl", ".jsonl.gz")
# Decode this many bytes of log text per call of the fast decoder.
BATCH_BYTES = 64 * 1024 * 1024


class SourceError(RuntimeError):
    """The sources cannot be read (unreachable database, missing table or directory)."""


# ---------------------------------------------------------------------------------------------
# The operational database


def extension_path(name: str) -> Path:
    """A DuckDB extension's file, shipped by its `duckdb-extension-<name>` package
    (`sqlite_scanner`, `postgres`): loaded from disk, never downloaded."""
    import importlib

    package = importlib.import_module(
        {"sqlite_scanner": "duckdb_extension_sqlite_scanner"}.get(name, f"duckdb_extension_{name}")
    )
    root = Path(package.__file__).parent  # type: ignore[arg-type]
    found = sorted(root.rglob(f"{name}.duckdb_extension"))
    if not found:
        raise SourceError(f"{name} extension file not found under {root}")
    if name == "postgres":
        return _named_postgres_scanner(found[-1])
    return found[-1]


@cache
def _named_postgres_scanner(shipped: Path) -> Path:
    """The package ships `postgres.duckdb_extension`, but DuckDB derives the entry point it
    calls from the file's name, and this extension's is `postgres_scanner`: a link under that
    name. It lives in the user's cache directory, made once and kept (a folder per process
    would be left behind by every run that is killed: an hourly job's worth a year). Where
    that cannot be written, in a folder of this process's own, removed when it exits."""
    name = "postgres_scanner.duckdb_extension"
    cache_root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.blake2b(str(shipped).encode(), digest_size=8).hexdigest()
    folder = cache_root / "agentkpi" / "extensions" / digest
    link = folder / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not (link.is_symlink() and os.readlink(link) == str(shipped)):
            # Made under another name and renamed: two processes may do it at once.
            made = folder / f".{name}.{os.getpid()}.{threading.get_ident()}"
            made.unlink(missing_ok=True)
            made.symlink_to(shipped)
            os.replace(made, link)
        return link
    except OSError:
        own = Path(tempfile.mkdtemp(prefix="agentkpi-ext-"))
        atexit.register(shutil.rmtree, own, ignore_errors=True)
        (own / name).symlink_to(shipped)
        return own / name


def sqlite_path(db_url: str) -> Path:
    """The file of a `sqlite:///relative/path.db` or `sqlite:////absolute/path.db` URL
    (SQLAlchemy's convention)."""
    parsed = urlparse(db_url)
    if parsed.scheme != "sqlite" or parsed.netloc:
        raise SourceError(f"not a sqlite URL: {db_url!r} (expected sqlite:///path/to/file.db)")
    path = unquote(parsed.path)
    # "sqlite:///rel.db" parses to "/rel.db", "sqlite:////abs.db" to "//abs.db".
    return Path(path[1:])


def sql_literal(text: str) -> str:
    """A SQL string literal (for the statements that take no parameters, such as ATTACH)."""
    return "'" + text.replace("'", "''") + "'"


def open_source(db_url: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the operational database attached as `src`.

    Extensions are loaded from installed files only; DuckDB never downloads one at run time.
    """
    scheme = urlparse(db_url).scheme
    if scheme == "sqlite":
        path = sqlite_path(db_url)
        if not path.is_file():
            raise SourceError(f"operational database not found: {path}")
        con = _with_extension("sqlite_scanner")
        con.execute("SET sqlite_all_varchar = true")
        con.execute(f"ATTACH {sql_literal(str(path))} AS src (TYPE sqlite, READ_ONLY)")
    elif scheme in ("postgresql", "postgres"):
        con = _with_extension("postgres")
        try:
            con.execute(f"ATTACH {sql_literal(db_url)} AS src (TYPE postgres, READ_ONLY)")
        except duckdb.Error as error:
            from flows.settings import redact_url

            parsed = urlparse(db_url)
            reason = str(error).splitlines()[0].replace(db_url, redact_url(db_url))
            if parsed.password:
                reason = reason.replace(parsed.password, "***")
            raise SourceError(f"operational database unreachable: {reason}") from None
    else:
        raise SourceError(f"unsupported database URL scheme {scheme!r}")
    return con


# The extension files whose signature DuckDB checked in this process, each as the file was
# then (path, device, inode, size, modification time).
_VERIFIED: set[tuple[str, int, int, int, int]] = set()
_VERIFIED_LOCK = threading.Lock()


def _with_extension(name: str) -> duckdb.DuckDBPyConnection:
    """A new in-memory connection with the extension `name` loaded from its file.

    DuckDB checks an extension's signature each time a database loads it: it hashes the whole
    file (35 MB for sqlite_scanner), 0.1 s of CPU, and a run opens the source twice. The
    first load in a process is checked; a later one of the same file, unchanged since (same
    inode, size and modification time), is loaded without the check, by a connection that
    allows unsigned extensions and runs only this module's SQL."""
    extension = extension_path(name)
    status = extension.stat()
    identity = (str(extension), status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)
    with _VERIFIED_LOCK:
        checked = identity in _VERIFIED
    con = duckdb.connect(
        ":memory:",
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_unsigned_extensions": checked,
            "memory_limit": "1GB",
            # Every query on the source is a scan its thread drives (SQLite's or PostgreSQL's
            # reader, then a cast to text); where one runs in parts, each part has a cursor
            # and a thread of its own. Worker threads besides would only wait for work and
            # take turns with the stages running beside: a 3-year hourly run, 10 turns
            # each, took 0.8 s less CPU and 0.4 s less time (median of the differences).
            "threads": 1,
        },
    )
    try:
        con.execute(f"LOAD '{extension}'")
    except BaseException:
        con.close()
        raise
    with _VERIFIED_LOCK:
        _VERIFIED.add(identity)
    return con


def source_kind(con: duckdb.DuckDBPyConnection) -> str:
    """`sqlite` or `postgres`: the type of the attached source."""
    row = con.execute("SELECT type FROM duckdb_databases() WHERE database_name = 'src'").fetchone()
    return str(row[0]) if row else "sqlite"


def source_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Names of the tables in the attached source."""
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'src'"
    ).fetchall()
    return {name for (name,) in rows}


# Rows whose updated_at is later than the latest one seen, less this margin for clock skew,
# are read again; the margin also covers text written with an offset up to ±14 hours.
OFFSET_MARGIN = timedelta(hours=14)


@dataclass(frozen=True)
class RowFilter:
    """Which rows of a source table to read: those with `id` above `after_id`, or those whose
    `updated_at` text is not before `changed_since`. Neither: every row.

    With `changed_since`, `read_up_to_id` is the highest `id` read before: rows above it are
    new and read whatever their `updated_at`; the others only when their `updated_at` is in
    the window. A row whose `updated_at` is NULL or not a date at all (which no watermark can
    place) is then read when new, and again once its `updated_at` moves into the window.
    Without `read_up_to_id` (a table without `id`, or none recorded yet), such rows are read
    every time, which costs three tests per row instead of one.

    `by_id` reads in `id` order (so that a watermark on the highest id read so far covers
    every row before). `id_range` (above, at most; None for no bound) narrows any of these
    to a range of ids. `only_ids` reads those ids alone (a lookup by the primary key)."""

    after_id: int | None = None
    changed_since: datetime | None = None
    read_up_to_id: int | None = None
    by_id: bool = False
    id_range: tuple[int | None, int | None] | None = None
    only_ids: tuple[int, ...] = ()

    def sql(self) -> str:
        """The WHERE and ORDER BY clauses, run by the source database itself (so that its
        index on `id` serves them); portable SQL."""
        tests = []
        if self.only_ids:
            # Alone: `id > n OR id IN (...)` makes SQLite scan the whole table.
            tests.append(f"id IN ({', '.join(str(int(i)) for i in self.only_ids)})")
        elif self.after_id is not None:
            tests.append(f"id > {int(self.after_id)}")
        elif self.changed_since is not None and not self.by_id:
            # ISO text compares in time order to the day; a day's slack covers the rest.
            cutoff = (self.changed_since - OFFSET_MARGIN).strftime("%Y-%m-%d")
            if self.read_up_to_id is not None:
                # The column itself, compared with text: an index on updated_at serves it
                # (SQLite and PostgreSQL alike, whether the column holds text or time);
                # without one, it is one test per row of a full scan. In SQLite a number in
                # updated_at (kept as one) sorts before any text: it is read when new only.
                tests.append(f"(id > {int(self.read_up_to_id)} OR updated_at >= '{cutoff}')")
            else:
                # Not read: dates (YYYY-...) before the cutoff; read: everything else.
                x = "COALESCE(CAST(updated_at AS TEXT), '')"
                tests.append(
                    f"NOT ({x} >= '0000' AND {x} < '{cutoff}' AND SUBSTR({x}, 5, 1) = '-')"
                )
        above, at_most = self.id_range or (None, None)
        if above is not None:
            tests.append(f"id > {int(above)}")
        if at_most is not None:
            tests.append(f"id <= {int(at_most)}")
        where = f"WHERE {' AND '.join(tests)}" if tests else ""
        return f"{where} ORDER BY id".strip() if self.by_id else where


def _select(con: duckdb.DuckDBPyConnection, table: str, rows: RowFilter) -> str:
    columns = SOURCE_TABLES[table]
    if table not in source_tables(con):
        raise SourceError(f"table {table!r} is missing from the operational database")
    select = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in columns)
    where = rows.sql()
    if not where:
        return f'SELECT {select} FROM src."{table}"'
    inner = ", ".join(f'"{c}"' for c in columns)
    query = f'SELECT {inner} FROM "{table}" {where}'
    # The source database runs the filter itself, so that its index on id serves it.
    return f"SELECT {select} FROM {in_source(con, query)}"


def in_source(con: duckdb.DuckDBPyConnection, query: str) -> str:
    """A FROM item: `query`, in the source database's own SQL, run by the source itself."""
    scanner = "postgres_query" if source_kind(con) == "postgres" else "sqlite_query"
    return f"{scanner}('src', {sql_literal(query)})"


def read_table(
    con: duckdb.DuckDBPyConnection, table: str, rows: RowFilter = RowFilter()
) -> pl.DataFrame:
    """The rows of a source table (all, or those `rows` selects), every contract column as
    text."""
    columns = SOURCE_TABLES[table]
    if table in OPTIONAL_TABLES and table not in source_tables(con):
        return pl.DataFrame(schema={c: pl.String for c in columns})
    try:
        batch = con.execute(_select(con, table, rows)).to_arrow_table()
    except duckdb.Error as error:
        raise SourceError(f"cannot read {table}: {error}") from error
    return _as_text(batch, columns)


def iter_table(
    con: duckdb.DuckDBPyConnection, table: str, batch_rows: int, rows: RowFilter = RowFilter()
) -> Iterator[pl.DataFrame]:
    """The rows of a source table (all, or those `rows` selects) in batches of at most
    `batch_rows`, streamed (one scan). Rows changed since a moment are looked for in every
    row, in parts read at the same time (see ChangedRowsScan)."""
    columns = SOURCE_TABLES[table]
    if ChangedRowsScan.serves(table, rows):
        scan = ChangedRowsScan(con, table, batch_rows, rows)
        try:
            yield from scan
        finally:
            scan.close()
        return
    try:
        reader: Iterable[object] = con.execute(_select(con, table, rows)).to_arrow_reader(
            batch_rows
        )
        for batch in reader:
            yield _as_text(batch, columns)
    except duckdb.Error as error:
        raise SourceError(f"cannot read {table}: {error}") from error


class ChangedRowsScan:
    """The rows of a table with an `id` that changed since a moment (`rows.changed_since`):
    no index serves `updated_at`, so every row is looked at. The scan is split into
    SCAN_PARTS ranges of ids, read at the same time by a cursor and a thread each, and it
    starts when made: a caller can load other tables meanwhile. Iterating gives the batches
    (of at most `batch_rows`), part after part; `close()` stops the threads."""

    @staticmethod
    def serves(table: str, rows: RowFilter) -> bool:
        """Whether `rows` of `table` call for such a scan."""
        return (
            rows.changed_since is not None
            and rows.after_id is None
            and "id" in SOURCE_TABLES[table]
        )

    def __init__(
        self, con: duckdb.DuckDBPyConnection, table: str, batch_rows: int, rows: RowFilter
    ) -> None:
        self._table = table
        try:
            parts = [_select(con, table, replace(rows, id_range=r)) for r in _id_ranges(con, table)]
        except duckdb.Error as error:
            raise SourceError(f"cannot read {table}: {error}") from error
        self._readers = [
            Ahead(_batches_of(con.cursor(), sql, batch_rows), f"{table}-{n}", PART_BATCHES_AHEAD)
            for n, sql in enumerate(parts)
        ]

    def __iter__(self) -> Iterator[pl.DataFrame]:
        columns = SOURCE_TABLES[self._table]
        try:
            for part in self._readers:
                for batch in part:
                    yield _as_text(batch, columns)
        except duckdb.Error as error:
            raise SourceError(f"cannot read {self._table}: {error}") from error

    def close(self) -> None:
        for part in self._readers:
            part.close()


# Added to a batch that holds a value which is not UTF-8 text: for each row, the columns
# that held one (NULL for a row without); the rules quarantine such rows (wrong_type).
NOT_UTF8 = "_not_utf8"


def _as_text(batch: pa.RecordBatch | pa.Table, columns: list[str]) -> pl.DataFrame:
    """A batch of a source table as a frame, every contract column as text.

    SQLite keeps whatever bytes it is given, in a TEXT value as in a BLOB, and hands them on
    as text. A value that is not UTF-8 becomes its text with the bad bytes escaped (`\\xff`),
    and the batch gets the column NOT_UTF8. Checking a batch costs about 50 ms a million
    rows; only a column that fails it is decoded value by value."""
    bad = [name for name in batch.schema.names if not _is_utf8(batch.column(name))]
    if not bad:
        return pl.from_arrow(batch).cast({c: pl.String for c in columns})  # type: ignore[union-attr]
    escaped: dict[str, list[str | None]] = {}
    held: list[list[str]] = [[] for _ in range(batch.num_rows)]
    for name in bad:
        values: list[str | None] = []
        for row, raw in enumerate(batch.column(name).cast(pa.large_binary()).to_pylist()):
            try:
                values.append(None if raw is None else raw.decode("utf-8"))
            except UnicodeDecodeError:
                values.append(raw.decode("utf-8", errors="backslashreplace"))
                held[row].append(name)
        escaped[name] = values
    frame = pl.from_arrow(batch.drop_columns(bad)).with_columns(  # type: ignore[union-attr]
        *(pl.Series(name, values, dtype=pl.String) for name, values in escaped.items()),
        pl.Series(NOT_UTF8, [", ".join(names) or None for names in held], dtype=pl.String),
    )
    return frame.select(*batch.schema.names, NOT_UTF8).cast({c: pl.String for c in columns})


def _is_utf8(column: pa.Array | pa.ChunkedArray) -> bool:
    """Whether a text column holds valid UTF-8 (any other column: true)."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return True
    try:
        column.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


# An incremental scan of a changing table runs in this many parts at once.
SCAN_PARTS = 2
# How many batches each part's thread may keep ready.
PART_BATCHES_AHEAD = 2


def _id_ranges(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[int | None, int | None]]:
    """SCAN_PARTS ranges of `id` (above, at most) that cover every row of `table` between
    them: the first has no lower bound and the last no upper one (rows added meanwhile).
    One range, unbounded, where an index on updated_at serves the search: the source then
    looks up the changed rows instead of scanning (a range of ids would have it scan)."""
    if indexed_by(con, table, "updated_at"):
        return [(None, None)]
    # Two subqueries: each is one look at the id index (min and max together would scan).
    query = f'SELECT (SELECT min(id) FROM "{table}") AS lo, (SELECT max(id) FROM "{table}") AS hi'
    lo, hi = con.execute(f"SELECT lo, hi FROM {in_source(con, query)}").fetchone()  # type: ignore[misc]
    try:
        first, last = int(lo), int(hi)
    except (TypeError, ValueError):  # no rows, or ids that are not integers: one part
        return [(None, None)]
    bounds = [first + (last - first) * n // SCAN_PARTS for n in range(1, SCAN_PARTS)]
    return list(zip([None, *bounds], [*bounds, None], strict=True))


def indexed_by(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    """Whether the source has an index on `table` whose first column is `column`."""
    if source_kind(con) == "postgres":
        query = (
            "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0] "
            f"WHERE c.relname = '{table}' AND a.attname = '{column}'"
        )
    else:
        query = (
            f"SELECT 1 FROM pragma_index_list('{table}') AS l "
            "JOIN pragma_index_info(l.name) AS i "
            f"WHERE i.seqno = 0 AND i.name = '{column}'"
        )
    return bool(con.execute(f"SELECT * FROM {in_source(con, query)}").fetchall())


def _batches_of(
    cursor: duckdb.DuckDBPyConnection, sql: str, batch_rows: int
) -> Callable[[Callable[[object], bool]], None]:
    """A producer for `Ahead`: the Arrow batches of one query, on its own cursor (closed
    at the end)."""

    def produce(hand_over: Callable[[object], bool]) -> None:
        try:
            for batch in cursor.execute(sql).to_arrow_reader(batch_rows):
                if not hand_over(batch):
                    return
        finally:
            cursor.close()

    return produce


# ---------------------------------------------------------------------------------------------
# The log files


@dataclass(frozen=True)
class LogFile:
    """One log file: its path relative to the logs directory, and its size."""

    path: str
    size_bytes: int


LOG_DIR_COLUMNS = {"path": pl.String, "mtime_ns": pl.Int64, "has_subdirs": pl.Boolean}
# A directory modified this recently may still change within the same clock tick of its
# mtime: it is listed again next time.
SETTLED_NS = 2_000_000_000


def list_changed_log_files(
    logs_dir: Path, listed: dict[str, tuple[int, bool]], now_ns: int
) -> tuple[list[LogFile], pl.DataFrame]:
    """The log files of the directories that changed since they were `listed` (relative
    path → (mtime_ns, had subdirectories) when last listed), sorted by path; and every
    directory's state to remember (LOG_DIR_COLUMNS).

    Adding or renaming a file into a directory changes the directory's mtime, so a directory
    with the same mtime, and no subdirectories, holds the files it held: it is not listed
    again. A visible log file never changes (the contract), so its size is final. An hourly
    run on a year of history so lists one day's directory instead of 250,000 files."""
    if not logs_dir.is_dir():
        raise SourceError(f"logs directory not found: {logs_dir}")
    files: list[LogFile] = []
    states: list[tuple[str, int, bool]] = []
    pending = [""]  # relative paths, joined as text: a year's listing is 250,000 files
    while pending:
        relative = pending.pop()
        directory = os.path.join(logs_dir, relative)
        mtime_ns = os.stat(directory).st_mtime_ns
        before = listed.get(relative)
        if before is not None and before == (mtime_ns, False):
            states.append((relative, mtime_ns, False))
            continue
        subdirs = False
        prefix = relative + os.sep if relative else ""
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    subdirs = True
                    pending.append(prefix + entry.name)
                elif entry.name.endswith(LOG_SUFFIXES) and entry.is_file():
                    files.append(LogFile(prefix + entry.name, entry.stat().st_size))
        settled = now_ns - mtime_ns > SETTLED_NS
        states.append((relative, mtime_ns if settled else -1, subdirs))
    frame = pl.DataFrame(states, schema=LOG_DIR_COLUMNS, orient="row")
    return sorted(files, key=lambda f: f.path), frame


def read_log_bytes(path: Path) -> bytes:
    """A log file's text as bytes, decompressed when gzip, ending with a newline."""
    return _log_text(path.name, path.read_bytes())


def _log_text(name: str, data: bytes) -> bytes:
    """A log file's content as text: decompressed when gzip, ending with a newline."""
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    if data and not data.endswith(b"\n"):
        data += b"\n"
    return data


LOG_MANIFEST_COLUMNS = {
    "path": pl.String,
    "size_bytes": pl.Int64,
    "checksum": pl.String,
    "lines": pl.Int64,
    "copy_of": pl.String,
}


def checksum(data: bytes) -> str:
    """A log file's identity: BLAKE2b of its (decompressed) text."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


# A file to decode: its name, its text (ending with a newline) and its number of lines.
LogText = tuple[str, bytes, int]


def read_new_log_lines(
    logs_dir: Path,
    files: Iterable[LogFile],
    read_before: Callable[[list[str]], dict[str, str]] | None,
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """Decoded log lines of the given files, in batches of about `BATCH_BYTES`, each with
    its files' manifest entries (LOG_MANIFEST_COLUMNS).

    One row per line, in file order then line order: file, line_no (from 1), parse_error
    (NULL, `not_json` or `wrong_type:<field>`) and the event's fields (see LOG_FIELDS).
    The files are read by one thread ahead of the decoding (see `read_ahead`).

    `read_before` maps checksums to the paths of files read before with that text (those it
    knows of; asked once per group of files read, so that a run need not hold the checksums
    of years of files); None when no file was read before. A file whose text was read
    before (or repeats a file earlier in this read) is not decoded: its entry names the file
    it copies (`copy_of`) and counts its lines."""
    known: dict[str, str] = {}
    batch: list[LogText] = []
    entries: list[tuple[str, int, str, int, str | None]] = []
    size = 0
    groups = read_ahead_groups(logs_dir, files)
    for log_file, data, digest, lines in _with_read_before(groups, read_before, known):
        copy_of = known.get(digest)
        entries.append((log_file.path, log_file.size_bytes, digest, lines, copy_of))
        if copy_of is not None:
            continue
        known[digest] = log_file.path
        batch.append((log_file.path, data, lines))
        size += len(data)
        if size >= BATCH_BYTES:
            yield (
                _decode_batch(batch),
                pl.DataFrame(entries, schema=LOG_MANIFEST_COLUMNS, orient="row"),
            )
            batch, entries, size = [], [], 0
    if batch or entries:
        yield _decode_batch(batch), pl.DataFrame(entries, schema=LOG_MANIFEST_COLUMNS, orient="row")


# How many files the reading thread hands over at a time, and how many such groups it may
# keep ready: about 2 x BATCH_BYTES of text at the demo's file sizes.
READ_GROUP_FILES = 256
READ_AHEAD_GROUPS = 48


def _with_read_before(
    groups: Iterable[list[tuple[LogFile, bytes, str, int]]],
    read_before: Callable[[list[str]], dict[str, str]] | None,
    known: dict[str, str],
) -> Iterator[tuple[LogFile, bytes, str, int]]:
    """The files of `groups`, each group's checksums read before added to `known` first."""
    for group in groups:
        if read_before is not None:
            known.update(read_before([d for _, _, d, _ in group if d not in known]))
        yield from group


def read_ahead(
    logs_dir: Path, files: Iterable[LogFile]
) -> Iterator[tuple[LogFile, bytes, str, int]]:
    """Each file's text (decompressed), checksum and line count, in the given order (see
    `read_ahead_groups`)."""
    for group in read_ahead_groups(logs_dir, files):
        yield from group


def read_ahead_groups(
    logs_dir: Path, files: Iterable[LogFile]
) -> Iterator[list[tuple[LogFile, bytes, str, int]]]:
    """Each file's text (decompressed), checksum and line count, in the given order and in
    groups of up to READ_GROUP_FILES files, read by one thread that keeps up to
    READ_AHEAD_GROUPS groups ready: the disk works while the caller decodes and loads
    (reading, gunzip and the checksum release the GIL). An error reading a file is raised
    here, at that file; closing the iterator early stops the thread."""

    def read_all(hand_over: Callable[[object], bool]) -> None:
        group: list[tuple[LogFile, bytes, str, int]] = []
        for log_file, raw in _prefetched_contents(logs_dir, files):
            data = _log_text(log_file.path, raw)
            group.append((log_file, data, checksum(data), data.count(b"\n")))
            if len(group) >= READ_GROUP_FILES:
                if not hand_over(group):
                    return
                group = []
        if group:
            hand_over(group)

    reader = Ahead(read_all, "log-reader", READ_AHEAD_GROUPS)
    try:
        yield from reader  # type: ignore[misc]
    finally:
        reader.close()


# Files opened and announced to the kernel (POSIX_FADV_WILLNEED) ahead of the one read. Out
# of the page cache, the disk then serves many small files at once: 200 MB/s here, against
# 65 MB/s for one file after another (docs/benchmarks.md).
PREFETCH_FILES = 128


def _prefetched_contents(
    logs_dir: Path, files: Iterable[LogFile]
) -> Iterator[tuple[LogFile, bytes]]:
    """Each file's content as stored, in the given order. Each file is opened, and its
    reading asked of the kernel, PREFETCH_FILES files before its turn; an error opening or
    reading a file is raised at that file's turn. Few system calls per file: the thread
    that reads waits for the GIL after each."""
    advise = getattr(os, "posix_fadvise", None)
    ahead: collections.deque[tuple[LogFile, int | OSError]] = collections.deque()
    pending = iter(files)
    root = str(logs_dir)

    def open_next() -> None:
        log_file = next(pending, None)
        if log_file is None:
            return
        try:
            fd = os.open(os.path.join(root, log_file.path), os.O_RDONLY)
        except OSError as error:
            ahead.append((log_file, error))
            return
        if advise is not None:
            advise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        ahead.append((log_file, fd))

    try:
        for _ in range(PREFETCH_FILES):
            open_next()
        while ahead:
            log_file, fd = ahead.popleft()
            open_next()
            if isinstance(fd, OSError):
                raise fd
            try:
                content = _read_all(fd, log_file.size_bytes)
            finally:
                os.close(fd)
            yield log_file, content
    finally:
        for _, fd in ahead:
            if not isinstance(fd, OSError):
                os.close(fd)


def _read_all(fd: int, size: int) -> bytes:
    """What is left to read of an open file whose size is `size` (as listed): one read when
    the size still holds."""
    data = os.read(fd, size + 1)
    if len(data) <= size:
        return data
    parts = [data]
    while chunk := os.read(fd, 1 << 20):
        parts.append(chunk)
    return b"".join(parts)


class Ahead:
    """What `produce` hands over, made by a thread of its own that starts at once and keeps
    at most `keep` items ready for the reader. An error in the thread is raised to the
    reader after the items before it; `close()` stops the thread (call it when done)."""

    def __init__(
        self, produce: Callable[[Callable[[object], bool]], None], name: str, keep: int = 2
    ) -> None:
        self._ready: queue.Queue[object] = queue.Queue(maxsize=keep)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(produce,), name=name, daemon=True)
        self._thread.start()

    def _hand_over(self, item: object) -> bool:
        """Queue `item` for the reader; False once the reader has stopped listening."""
        while not self._stop.is_set():
            try:
                self._ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, produce: Callable[[Callable[[object], bool]], None]) -> None:
        try:
            produce(self._hand_over)
            self._hand_over(_END)
        except BaseException as error:  # handed to the reader, raised in its thread
            self._hand_over(_Failure(error))

    def __iter__(self) -> Iterator[object]:
        while True:
            item = self._ready.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


_END = object()


@dataclass(frozen=True)
class _Failure:
    error: BaseException


def _decode_batch(batch: list[LogText]) -> pl.DataFrame:
    """Decode a batch of files. Fast path: one strict decode of the whole batch. Where that
    fails, chunks of CHUNK_FILES files; a chunk the strict decoder refuses is decoded line
    by line. Each file is decoded at most three times, whatever the number of bad lines."""
    frames = list(_decode_or_split(batch, CHUNK_FILES))
    if not frames:
        return pl.DataFrame(schema=LOG_LINE_COLUMNS)
    return pl.concat(frames, how="vertical")


CHUNK_FILES = 64


def _chunks(batch: list[LogText], size: int) -> Iterator[list[LogText]]:
    for start in range(0, len(batch), size):
        yield batch[start : start + size]


def _decode_or_split(batch: list[LogText], chunk_files: int) -> Iterator[pl.DataFrame]:
    decoded = _decode_strict(batch)
    if decoded is not None:
        yield decoded
    elif len(batch) <= chunk_files:
        # Polars costs about a millisecond a call: past this size, decoding the chunk's lines
        # in Python is cheaper than finding its bad files.
        yield _decode_lines(batch)
    else:
        for chunk in _chunks(batch, chunk_files):
            yield from _decode_or_split(chunk, chunk_files)


def _decode_strict(batch: list[LogText]) -> pl.DataFrame | None:
    """The whole batch through Polars' strict NDJSON decoder, or None where it refuses."""
    counts = np.fromiter((lines for _, _, lines in batch), dtype=np.int64, count=len(batch))
    total = int(counts.sum())
    if total == 0:
        return pl.DataFrame(schema=LOG_LINE_COLUMNS)
    try:
        decoded = pl.read_ndjson(io.BytesIO(b"".join(d for _, d, _ in batch)), schema=LOG_FIELDS)
    except (pl.exceptions.PolarsError, ValueError):
        return None
    if decoded.height != total:  # a blank line: let the line-by-line decoder name it
        return None
    if decoded.select(_MAYBE_NOT_TEXT.any()).item():
        return None
    file_index = np.repeat(np.arange(len(batch)), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    names = pl.Series("file", [name for name, _, _ in batch], dtype=pl.String)
    return decoded.select(
        names.gather(file_index).alias("file"),
        pl.Series("line_no", np.arange(total) - starts + 1, dtype=pl.Int64),
        pl.lit(None, dtype=pl.String).alias("parse_error"),
        *LOG_FIELDS,
    )


# Polars' decoder gives a JSON object, array or boolean in a text field as its text (`{"a":
# 1}`, `true`), where the contract calls it a value of the wrong type. Such text (or the same
# text given as a string) sends the batch to the line-by-line decoder, which tells them
# apart.
_MAYBE_NOT_TEXT = pl.any_horizontal(
    pl.col(field).str.starts_with("{")
    | pl.col(field).str.starts_with("[")
    | pl.col(field).is_in(["true", "false"])
    for field, kind in LOG_FIELDS.items()
    if kind == pl.String
)


_INT_FIELDS = frozenset(f for f, t in LOG_FIELDS.items() if t == pl.Int64)
_FLOAT_FIELDS = frozenset(f for f, t in LOG_FIELDS.items() if t == pl.Float64)


def _decode_lines(batch: list[LogText]) -> pl.DataFrame:
    """Decode files line by line (see `decode_log_lines`)."""
    return decode_log_lines(
        (name, line_no, line)
        for name, data, _ in batch
        for line_no, line in enumerate(data.split(b"\n")[:-1], start=1)
    )


def decode_log_lines(lines: Iterable[tuple[str, int, bytes]]) -> pl.DataFrame:
    """Decode (file, line_no, text) lines one by one, typing each field as the strict decoder
    does: integers for the queues, finite numbers for cpu and memory, text (or a number's
    text) for the rest. A line that is not a JSON object is `not_json`. A value of the wrong
    type is NULL, and makes the line `wrong_type:<field>` where the field is one of its event
    type's (see EVENT_FIELDS)."""
    columns: dict[str, list[object]] = {name: [] for name in LOG_LINE_COLUMNS}
    files, line_nos, errors = columns["file"], columns["line_no"], columns["parse_error"]
    fields = [(name, columns[name]) for name in LOG_FIELDS]
    for name, line_no, line in lines:
        files.append(name)
        line_nos.append(line_no)
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            event = None
        if type(event) is not dict:
            errors.append("not_json")
            for _, values in fields:
                values.append(None)
            continue
        kind = event.get("event")
        checked = COMMON_FIELDS + (EVENT_FIELDS.get(kind, ()) if type(kind) is str else ())
        error = None
        for field, values in fields:
            value = event.get(field)
            if value is not None:
                value, ok = _typed(field, value)
                if not ok and error is None and field in checked:
                    error = f"wrong_type:{field}"
            values.append(value)
        errors.append(error)
    return pl.DataFrame(columns, schema=LOG_LINE_COLUMNS)


def _typed(field: str, value: object) -> tuple[object, bool]:
    """A JSON value in its field's type (or None), and whether it had that type."""
    kind = type(value)
    if field in _INT_FIELDS:
        ok = kind is int and -(2**63) <= value < 2**63
        return (value if ok else None), ok
    if field in _FLOAT_FIELDS:
        ok = (kind is int or kind is float) and math.isfinite(value)
        return (float(value) if ok else None), ok
    if kind is str:
        return value, True
    if kind is int or kind is float:  # a number in a text field: its text, as Polars does
        return json.dumps(value), True
    return None, False


def raw_log_lines(logs_dir: Path, locations: pl.DataFrame) -> pl.DataFrame:
    """The raw text of given (file, line_no) locations, for the quarantine's payload."""
    texts: list[str] = []
    cache: dict[str, list[bytes]] = {}
    for name, line_no in locations.select("file", "line_no").iter_rows():
        if name not in cache:
            cache = {name: read_log_bytes(logs_dir / name).split(b"\n")}
        texts.append(cache[name][line_no - 1].decode("utf-8", errors="replace"))
    return locations.with_columns(pl.Series("raw_payload", texts, dtype=pl.String))
