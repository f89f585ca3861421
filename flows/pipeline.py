"""The pipeline: extract → stage and quarantine → core → marts → checks → publish.

`run_pipeline` is plain Python, so it can be tested without Prefect; `flows/prefect_flows.py`
runs the same stages as Prefect tasks (with retries on the extract) by passing a `stage`
wrapper. Every stage's duration, row count and the process's peak memory are recorded in
`ops.stage_timings` and logged.
"""

from __future__ import annotations

import contextvars
import gc
import json
import logging
import resource
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np
import polars as pl

from flows import extract
from flows.settings import Settings
from quality import rules
from quality.expectations import STAGED_KEYS, CheckResult, validate_marts, validate_staged
from transforms import core, marts, staging
from transforms.periods import PERIOD_KEYS, days_touched, periods_containing, periods_overlapping
from warehouse.catalog import MART_KEYS
from warehouse.publish import discard, publish, write_marts
from warehouse.store import StateStore, registered, state_path_for

log = logging.getLogger("agentkpi")

SOURCE_BATCH_ROWS = 1_000_000
MART_NAMES = list(MART_KEYS)
PERIOD_MART_NAMES = ["agent_kpis", "department_kpis", "system_kpis", "workflow_kpis"]

Stage = Callable[..., Callable[..., Any]]


def plain_stage(fn: Callable[..., Any], **_: Any) -> Callable[..., Any]:
    """Run a stage as a plain function call (tests, and the Prefect-free path)."""
    return fn


def one_line(error: BaseException) -> str:
    """An unexpected error as one line: its type and the first line of its message."""
    return f"{type(error).__name__}: {error}".splitlines()[0]


class PipelineError(RuntimeError):
    """A run that cannot complete; its message is the one-line reason."""


class ValidationFailed(PipelineError):
    """A mart check failed: nothing was published."""


@dataclass
class SourceCount:
    """What one run did with one source: read = loaded + duplicates + quarantined."""

    source: str
    read: int = 0
    loaded: int = 0
    duplicates: int = 0
    quarantined: int = 0
    from_quarantine: int = 0  # of `read`: rows read again from the quarantine

    def add(self, read: int, loaded: int, duplicates: int, quarantined: int) -> None:
        self.read += read
        self.loaded += loaded
        self.duplicates += duplicates
        self.quarantined += quarantined

    def merge(self, other: SourceCount) -> None:
        self.add(other.read, other.loaded, other.duplicates, other.quarantined)
        self.from_quarantine += other.from_quarantine


@dataclass
class RunResult:
    """The outcome of a run, for the CLI and the tests."""

    run_id: str
    status: str
    warehouse: Path
    as_of: datetime | None = None
    counts: dict[str, SourceCount] = field(default_factory=dict)
    timings: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0  # the whole run; less than the stages' sum, some run side by side
    checks: list[CheckResult] = field(default_factory=list)
    message: str = ""

    @property
    def failed_checks(self) -> list[CheckResult]:
        """The checks that failed."""
        return [c for c in self.checks if not c.success]


def peak_rss_mb() -> float:
    """The most memory this process has held so far, in MB: its own high-water mark (Linux's
    VmHWM). Not `ru_maxrss`, which a process started by a larger one inherits: Linux keeps
    the parent's resident size at the fork as the child's maximum across exec."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class StageClock:
    """Times stages and records their rows and the process's peak memory."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.rows: list[dict[str, Any]] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        """Time the block; the block may set `info["rows"]`."""
        info: dict[str, Any] = {"rows": None}
        started = time.perf_counter()
        yield info
        seconds = time.perf_counter() - started
        peak_mb = peak_rss_mb()
        self.rows.append(
            {
                "run_id": self.run_id,
                "stage": name,
                "seconds": seconds,
                "rows": info["rows"],
                "peak_rss_mb": peak_mb,
            }
        )
        log.info(
            "stage %s: %.2f s, %s rows, peak RSS %.0f MB", name, seconds, info["rows"], peak_mb
        )


T = TypeVar("T")


def side_by_side(*calls: Callable[[], T]) -> list[T]:
    """Run the calls at the same time, each in its own thread and in a copy of the caller's
    context (so a Prefect task called inside runs in the caller's flow run); their results in
    order. All of them finish before the first error, if any, is raised."""
    with ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="stage") as pool:
        futures = [pool.submit(contextvars.copy_context().run, call) for call in calls]
        wait(futures)
    return [future.result() for future in futures]


# ---------------------------------------------------------------------------------------------
# Extract and stage


def _quarantine_rows(
    rejected: pl.DataFrame, source: str, location: pl.Expr, agent: pl.Expr, payload: pl.Expr
) -> pl.DataFrame:
    return rejected.select(
        pl.lit(source).alias("source"),
        location.alias("location"),
        "rule",
        "rule_check",
        agent.cast(pl.String).alias("agent_id"),
        payload.alias("raw_payload"),
    )


def _db_payload(table: str) -> pl.Expr:
    return pl.struct(extract.SOURCE_TABLES[table]).struct.json_encode()


def _located(table: str, key: str) -> pl.Expr:
    return pl.format(f"{table} {key}={{}}", pl.col(key).fill_null("NULL"))


def _split_db(
    raw: pl.DataFrame,
    table: str,
    stage_fn: Callable[[pl.LazyFrame], pl.LazyFrame],
    table_rules: list[rules.Rule],
    location: pl.Expr,
    agent: pl.Expr,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    if extract.NOT_UTF8 in raw.columns:  # a value that was not text comes first
        table_rules = [rules.not_utf8(extract.NOT_UTF8), *table_rules]
    staged = stage_fn(raw.lazy()).collect()
    valid, rejected = rules.split_by_rules(staged, table_rules)
    return valid, _quarantine_rows(rejected, table, location, agent, _db_payload(table))


@dataclass
class Touched:
    """What a run changed in core: the dates whose periods must be recomputed, or
    `everything` (a full refresh, a changed registry); `business` when business figures or
    targets changed (business_value is then recomputed, whatever dates they have)."""

    days: list[pl.DataFrame] = field(default_factory=list)
    everything: bool = False
    onward_from: date | None = None
    business: bool = False

    def add(self, frame: pl.DataFrame, moments: list[str], reach_s: float = 0.0) -> None:
        """Note the dates of these rows' moments (see `periods.days_touched`)."""
        if frame.height:
            self.days.append(days_touched(frame.lazy(), moments, reach_s).collect())

    def add_onward(self, frame: pl.DataFrame, moments: list[str]) -> None:
        """Note that every period from these rows' earliest date on changes (for the
        cumulative KPIs, such as the workflows succeeded so far)."""
        if frame.height:
            first = days_touched(frame.lazy(), moments).collect()["day"].min()
            if first is not None and (self.onward_from is None or first < self.onward_from):
                self.onward_from = first  # type: ignore[assignment]

    def dates(self, last: date) -> pl.Series:
        """Every touched date up to `last`, unique and sorted."""
        frames = list(self.days)
        if self.onward_from is not None and self.onward_from <= last:
            frames.append(pl.DataFrame({"day": pl.date_range(self.onward_from, last, eager=True)}))
        if not frames:
            return pl.Series("day", [], dtype=pl.Date)
        return pl.concat(frames)["day"].unique().sort()

    def to_frame(self) -> pl.DataFrame:
        """As rows of ops.touched_days (kept until marts covering them are published)."""
        days = pl.concat([pl.DataFrame(schema={"day": pl.Date}), *self.days])["day"].unique()
        rows = [("day", d) for d in days.to_list()]
        if self.onward_from is not None:
            rows.append(("onward", self.onward_from))
        if self.everything:
            rows.append(("everything", None))
        if self.business:
            rows.append(("business", None))
        return pl.DataFrame(rows, schema={"kind": pl.String, "day": pl.Date}, orient="row")

    @classmethod
    def from_frame(cls, frame: pl.DataFrame) -> Touched:
        """The union of what ops.touched_days holds."""
        touched = cls(
            everything=bool((frame["kind"] == "everything").any()),
            business=bool((frame["kind"] == "business").any()),
        )
        days = frame.filter(pl.col("kind") == "day").select("day")
        if days.height:
            touched.days.append(days)
        onward = frame.filter(pl.col("kind") == "onward")["day"].min()
        touched.onward_from = onward  # type: ignore[assignment]
        return touched


@dataclass
class Loaded:
    """What an extract stage did: the agents it knows of, its counts, and what it touched."""

    known_agents: pl.Series
    counts: dict[str, SourceCount]
    agents: pl.DataFrame | None = None  # the registry, from extract_registry
    # Why an incremental run became a full one (extract_registry), if it did.
    rebuilt: str | None = None


# Moments by which each core fact table's rows fall into periods (see transforms.marts).
FACT_MOMENTS = {
    "fct_task_runs": ["completed_at"],
    "fct_workflow_runs": ["started_at", "completed_at"],
    "fct_messages": ["sent_at", "received_at", "responded_at"],
    "fct_business_metric_versions": ["metric_date"],
}
DB_SOURCES = [
    "agents",
    "business_targets",
    "agent_performance",
    "workflow_executions",
    "agent_communications",
    "business_metrics",
]


def _ensure_core(store: StateStore, table: str, full: bool) -> None:
    """Create a core table empty when missing, or empty it for a full refresh."""
    # Every version of the business figures has the figures' columns.
    schema = core.CORE_SCHEMAS.get(table) or core.CORE_SCHEMAS["fct_business_metrics"]
    if full or not store.has_table("core", table):
        store.replace_table("core", table, pl.DataFrame(schema=schema))


def _max_int(frame: pl.DataFrame, column: str, current: int | None) -> int | None:
    values = frame[column].cast(pl.Int64, strict=False).drop_nulls()
    if values.is_empty():
        return current
    return max(int(values.max()), current or 0)  # type: ignore[arg-type]


# The widest run of missing ids noted as skipped: a wider one is a jump of the source's ids
# (a sequence moved on), not rows still to commit.
MAX_SKIPPED_RUN = 1000
# Missing ids are kept as gaps only this close below the highest id a run read: rows still
# to commit hold the latest ids; a hole deep in the history (an insert rolled back long
# ago) is not looked for.
RECENT_IDS = 100_000


def skipped_ids(read: pl.Series, after: int | None) -> pl.Series:
    """The ids past `after` that a batch of rows read in id order (`read`, as text) skipped:
    those between `after` (or the first id read) and the highest read, that it lacks. In
    PostgreSQL a row can commit after a row with a higher id, so such an id may still come.
    Runs of more than MAX_SKIPPED_RUN missing ids are left out."""
    ids = read.cast(pl.Int64, strict=False).drop_nulls().unique().sort()
    if after is not None:
        ids = ids.filter(ids > after)
    if ids.is_empty():
        return pl.Series("id", [], dtype=pl.Int64)
    frame = pl.DataFrame({"end": ids}).with_columns(
        pl.col("end").shift(1, fill_value=after if after is not None else ids[0]).alias("start")
    )
    runs = frame.filter(
        (pl.col("end") - pl.col("start") > 1)
        & (pl.col("end") - pl.col("start") - 1 <= MAX_SKIPPED_RUN)
    )
    missing = runs.select(pl.int_ranges(pl.col("start") + 1, pl.col("end")).alias("id"))
    return missing.explode("id")["id"]


def _accounting(
    counts: dict[str, SourceCount], store: StateStore, run_id: str, run_started_at: datetime
) -> Callable[[str, int, int, pl.DataFrame], None]:
    """`account(source, read, valid, bad)`: count a batch of a source table's rows (none of
    them duplicates) and quarantine its bad ones."""

    def account(source: str, read: int, valid: int, bad: pl.DataFrame) -> None:
        counts.setdefault(source, SourceCount(source)).add(read, valid, 0, bad.height)
        store.add_rejected(run_id, run_started_at, bad)

    return account


def extract_registry(
    settings: Settings, run_started_at: datetime, store: StateStore, run_id: str, full: bool
) -> Loaded:
    """Read the registry (`agents`) and the targets, whole, in one transaction. When the
    registry changed since the last run, rows held in quarantine for an unknown agent are
    released in the same transaction. `full` first empties what a full refresh reads again.

    An incremental run becomes a full one when the registry no longer knows an agent it knew
    (its row gone, or now breaking a rule): that agent's rows and lines, loaded, must go back
    to the quarantine with their raw payloads, as a full run would hold them, and only the
    sources have those. The returned `rebuilt` says so.

    The other extract stages run after it, side by side: they need the agents it knows."""
    con = extract.open_source(settings.db_url)
    counts = {source: SourceCount(source) for source in DB_SOURCES}
    account = _accounting(counts, store, run_id, run_started_at)
    rebuilt = None
    try:
        registry = _staged_registry(con, run_started_at)
        with store.transaction():
            if not full:
                rebuilt = _registry_lost(store, registry.valid)
                full = rebuilt is not None
            if full:
                store.clear_rejected(DB_SOURCES)
                store.reset_watermarks(DB_SOURCES)
            # Every core table is made (or emptied for a full refresh) here, before the stages
            # that fill them run side by side.
            for table in DB_CORE_TABLES + EVENT_CORE_TABLES:
                _ensure_core(store, table, full)
            agents, changed, targets_changed = _extract_registry(
                con, store, run_started_at, account, registry
            )
            if changed and not full:
                # An agent moved: its tasks take the registry's department, everywhere.
                store.con.execute(
                    "UPDATE core.fct_task_runs t SET department = a.department "
                    "FROM core.dim_agents a WHERE t.agent_id = a.agent_id "
                    "AND t.department IS DISTINCT FROM a.department"
                )
            store.add_touched(
                Touched(everything=full or changed, business=targets_changed).to_frame()
            )
            ctx = rules.RuleContext(run_started_at, agents["agent_id"])
            if changed and not full:
                _release_held(store, settings, ctx, agents, counts, run_id)
            if not full:
                _release_due(store, settings, ctx, agents, counts, run_id)
            if full:  # the log side's state too: extract_logs then reads every file again
                store.clear_log_manifest()
                store.clear_rejected(["logs"])
    finally:
        con.close()
    return Loaded(known_agents=agents["agent_id"], counts=counts, agents=agents, rebuilt=rebuilt)


def _registry_lost(store: StateStore, valid: pl.DataFrame) -> str | None:
    """Why this run must rebuild from the sources: the agents the registry knew at the last
    run and that its `valid` rows no longer hold; None when it lost none."""
    if not store.has_table("core", "dim_agents"):
        return None
    before = store.query("SELECT agent_id FROM core.dim_agents")["agent_id"]
    lost = sorted(set(before.to_list()) - set(valid["agent_id"].to_list()))
    if not lost:
        return None
    if valid.is_empty():
        # More likely a source emptied by mistake than a platform without agents: rebuilding
        # would publish empty marts over the stakeholders' figures.
        raise PipelineError(
            f"the registry (agents) lists no valid agent, where it knew {before.len()}: "
            "nothing rebuilt or published; `agentkpi run --full-refresh` rebuilds from it "
            "if that is right"
        )
    named = ", ".join(lost[:5]) + (f" and {len(lost) - 5} more" if len(lost) > 5 else "")
    return f"rebuilt from the sources: the registry no longer knows {named}"


@dataclass(frozen=True)
class StagedRegistry:
    """The registry (`agents`) as read, its valid rows staged, and its bad rows."""

    raw: pl.DataFrame
    valid: pl.DataFrame
    bad: pl.DataFrame


def _staged_registry(con: duckdb.DuckDBPyConnection, run_started_at: datetime) -> StagedRegistry:
    """The registry, read and staged (once a run: extract_registry compares and loads it)."""
    raw = extract.read_table(con, "agents")
    no_agents = rules.RuleContext(run_started_at, pl.Series(dtype=pl.String))
    valid, bad = _split_db(
        raw,
        "agents",
        staging.stage_agents,
        rules.agents_rules(no_agents),
        _located("agents", "agent_id"),
        pl.col("agent_id"),
    )
    return StagedRegistry(raw, valid, bad)


def extract_database(
    settings: Settings,
    registry: Loaded,
    run_started_at: datetime,
    store: StateStore,
    run_id: str,
    full: bool,
) -> Loaded:
    """Read what is new in the operational tables, type it, split off bad rows, and load it
    into core. Each step commits its rows with the watermark that says how far it read (and
    the dates it touched), so a run stopped at any point leaves a consistent state that the
    next run continues from.

    New is: `agent_performance` and `business_metrics` rows past the last id read, in id
    order; `workflow_executions` and `agent_communications` rows changed since the latest
    `updated_at` seen, less `settings.lookback_s` (they replace their earlier version). On a
    full refresh (`full`), extract_registry has reset the watermarks: everything is new."""
    con = extract.open_source(settings.db_url)
    counts: dict[str, SourceCount] = {}
    account = _accounting(counts, store, run_id, run_started_at)
    agents = registry.agents
    ctx = rules.RuleContext(run_started_at, agents["agent_id"])
    changing = _changing_tables(ctx)
    # A search for changed rows looks at every row of its table: it starts first, and runs
    # while the tasks load.
    scans: dict[str, extract.ChangedRowsScan] = {}
    try:
        for spec in changing:
            *_, rows = _changed_since(store, settings, spec.source)
            if extract.ChangedRowsScan.serves(spec.source, rows):
                scans[spec.source] = extract.ChangedRowsScan(
                    con, spec.source, SOURCE_BATCH_ROWS, rows
                )
        _extract_tasks(con, store, settings, ctx, agents, account, run_id)
        _extract_changed(con, store, settings, ctx, counts, run_id, full, changing, scans)
        _extract_metrics(con, store, settings, ctx, account, run_id)
    finally:
        for scan in scans.values():
            scan.close()
        con.close()
    return Loaded(known_agents=registry.known_agents, counts=counts)


DB_CORE_TABLES = [
    "dim_agents",
    "dim_business_targets",
    "fct_task_runs",
    "fct_workflow_runs",
    "fct_messages",
    "fct_business_metric_versions",
    "fct_business_metrics",
]


def _extract_registry(
    con, store, run_started_at, account, registry: StagedRegistry
) -> tuple[pl.DataFrame, bool, bool]:  # type: ignore[no-untyped-def]
    """agents (`registry`, staged) and business_targets, read whole; returns the registry,
    whether it changed since the last run (which changes every period) and whether the
    targets did."""
    store.clear_rejected(["agents"])
    account("agents", registry.raw.height, registry.valid.height, registry.bad)
    agents = core.dim_agents(registry.valid.lazy()).collect().sort("agent_id")
    changed = _replace_noting_change(store, "dim_agents", agents)
    ctx = rules.RuleContext(run_started_at, agents["agent_id"])

    raw_targets = extract.read_table(con, "business_targets")
    valid, bad = _split_db(
        raw_targets.with_row_index("row", offset=1).with_columns(pl.col("row").cast(pl.String)),
        "business_targets",
        staging.stage_business_targets,
        rules.business_target_rules(ctx),
        _located("business_targets", "row"),
        pl.lit(None),
    )
    store.clear_rejected(["business_targets"])
    account("business_targets", raw_targets.height, valid.height, bad)
    targets = core.business_targets(valid.lazy()).collect()
    targets_changed = _replace_noting_change(store, "dim_business_targets", targets)
    return agents, changed, targets_changed


def _replace_noting_change(store: StateStore, table: str, frame: pl.DataFrame) -> bool:
    """Replace `core.table` with `frame`; whether its rows changed (a table not there yet
    has not)."""
    changed = False
    if store.has_table("core", table):
        before = store.query(f"SELECT * FROM core.{table}")
        changed = not before.sort(pl.all()).equals(frame.sort(pl.all()))
    store.replace_table("core", table, frame)
    return changed


def _release_held(store, settings, ctx, agents, counts, run_id) -> None:  # type: ignore[no-untyped-def]
    """Rows and lines held in quarantine for naming an agent the registry did not know are
    staged again from their raw payload, now that the registry changed: as if read for the
    first time, so the marts equal those of a run that knew the agent from the start. What
    still breaks a rule goes back to the quarantine. Inside the registry's transaction, so
    that a run stopped after it cannot miss them."""
    _restage(store, settings, ctx, agents, counts, run_id, store.release_rejected("unknown_agent"))


# The sources whose held rows can be staged again (the registry's are read anew every run).
RESTAGED_SOURCES = [
    "agent_performance",
    "workflow_executions",
    "agent_communications",
    "business_metrics",
    "logs",
]


# The source columns that hold a date, not a timestamp (staging.parse_date reads them).
DATE_COLUMNS = ["metric_date"]


def _release_due(store, settings, ctx, agents, counts, run_id) -> None:  # type: ignore[no-untyped-def]
    """Rows and lines held for a timestamp more than 5 minutes after the run that read them
    are staged again, as `_release_held` does, once this run's clock has passed it: a full
    run now would load them. Those still ahead stay as they are (the demo's lie in 2099)."""
    held = store.query(
        "SELECT source, location, rule_check, raw_payload FROM quarantine.rejected_rows "
        "WHERE rule = 'future_timestamp'"
    ).filter(pl.col("source").is_in(RESTAGED_SOURCES))
    if held.is_empty():
        return
    # The rule names the column it found ahead ("<column> is at most 5 minutes after ...").
    columns = [check.split(" ", 1)[0] for check in held["rule_check"]]
    moments = [
        _payload_field(payload, column)
        for column, payload in zip(columns, held["raw_payload"], strict=True)
    ]
    # Parsed as staging parses the column: a date (a business figure's metric_date, which
    # may be written as a timestamp) is due once the run's day has come.
    text = pl.col("moment")
    moment = (
        pl.when(pl.col("column").is_in(DATE_COLUMNS))
        .then(staging.parse_date(text).cast(pl.Datetime("us")))
        .otherwise(staging.parse_timestamp(text))
    )
    due = held.with_columns(
        pl.Series("column", columns, dtype=pl.String),
        pl.Series("moment", moments, dtype=pl.String),
    ).filter(moment <= pl.lit(ctx.latest_allowed))
    if due.is_empty():
        return
    for (source,), rows in due.group_by("source", maintain_order=True):
        store.forget_rejected(source, rows["location"])
    _restage(
        store, settings, ctx, agents, counts, run_id, due.drop("rule_check", "column", "moment")
    )


def _payload_field(payload: str | None, field: str) -> str | None:
    """A field of a held row's JSON payload, as text (None where there is none)."""
    try:
        value = json.loads(payload) if payload else None
    except ValueError:
        return None
    text = value.get(field) if isinstance(value, dict) else None
    return text if isinstance(text, str) else None


def _restage(store, settings, ctx, agents, counts, run_id, held: pl.DataFrame) -> None:  # type: ignore[no-untyped-def]
    """Stage held rows again from their raw payload (source, location, raw_payload), taken
    out of the quarantine by the caller: as if read for the first time."""
    if held.is_empty():
        return
    for table in ["fct_task_runs", "fct_workflow_runs", "fct_messages", *EVENT_CORE_TABLES]:
        _ensure_core(store, table, full=False)
    touched = Touched()
    released: dict[str, SourceCount] = {}
    for (source,), rows in held.group_by("source", maintain_order=True):
        if source == "logs":
            _release_log_lines(store, settings, ctx, rows, touched, released, run_id)
            continue
        columns = extract.SOURCE_TABLES[source]
        raw = rows.select(
            pl.col("raw_payload").str.json_decode(pl.Struct(dict.fromkeys(columns, pl.String)))
        ).unnest("raw_payload")
        if source == "agent_performance":
            valid, bad, facts = _stage_tasks(raw, ctx, agents)
            store.append_table("core", "fct_task_runs", facts)
            store.add_rejected(run_id, ctx.run_started_at, bad)
            touched.add(facts, FACT_MOMENTS["fct_task_runs"])
            released[source] = SourceCount(source, raw.height, valid.height, 0, bad.height)
            continue
        if source == "business_metrics":
            valid, bad = _add_metric_versions(store, ctx, raw)
            store.add_rejected(run_id, ctx.run_started_at, bad)
            released[source] = SourceCount(source, raw.height, valid.height, 0, bad.height)
            continue
        spec = next((t for t in _changing_tables(ctx) if t.source == source), None)
        if spec is None:
            raise PipelineError(f"quarantine: no way to release rows of {source}")
        _replace_rows(store, ctx, released, run_id, False, spec, raw, touched)
    for source, count in released.items():
        count.from_quarantine = count.read
        counts.setdefault(source, SourceCount(source)).merge(count)
    store.add_touched(touched.to_frame())


def _release_log_lines(store, settings, ctx, rows, touched, released, run_id) -> None:  # type: ignore[no-untyped-def]
    """Held log lines, decoded again from their text (`file:line` locations)."""
    located = rows.select(
        pl.col("location").str.replace(r":\d+$", "").alias("file"),
        pl.col("location").str.extract(r":(\d+)$").cast(pl.Int64).alias("line_no"),
        "raw_payload",
    ).sort("file", "line_no")
    lines = extract.decode_log_lines(
        (file, line_no, text.encode()) for file, line_no, text in located.iter_rows()
    )
    events = _stage_log_lines(
        lines,
        rules.log_event_rules(ctx),
        settings.kpi.heartbeat_interval_s,
        read_offset=0,
        raw_text=lambda bad: bad.join(located, on=["file", "line_no"], how="left"),
    )
    loaded = events.load(store, run_id, ctx.run_started_at)
    touched.days.extend(events.touched.days)
    released["logs"] = SourceCount(
        "logs", lines.height, loaded, events.valid - loaded, events.bad.height
    )


def _extract_tasks(con, store, settings, ctx, agents, account, run_id) -> None:  # type: ignore[no-untyped-def]
    """agent_performance: append-only, read past the last id in id order; each batch commits
    with its watermark."""
    _ensure_core(store, "fct_task_runs", full=False)
    last_id, reads = _id_reads(store, "agent_performance")
    for rows in reads:
        for raw in extract.iter_table(con, "agent_performance", SOURCE_BATCH_ROWS, rows):
            valid, bad, facts = _stage_tasks(raw, ctx, agents)
            touched = Touched()
            touched.add(facts, FACT_MOMENTS["fct_task_runs"])
            with store.transaction():
                account("agent_performance", raw.height, valid.height, bad)
                store.append_table("core", "fct_task_runs", facts)
                last_id = _move_id_watermark(store, ctx, run_id, "agent_performance", raw, last_id)
                store.add_touched(touched.to_frame())
    with store.transaction():
        _settle_id_gaps(store, settings, ctx, run_id, "agent_performance", last_id)


def _id_reads(store: StateStore, source: str) -> tuple[int | None, list[extract.RowFilter]]:
    """The last id read of an append-only table, and what to read of it, in id order: the
    ids skipped before (see `skipped_ids`), then the rows past that id. Two queries: one
    with both tests makes SQLite scan the whole table."""
    last_id, _ = store.watermark(source)
    gaps = store.id_gaps(source) if last_id is not None else []
    reads = [extract.RowFilter(only_ids=tuple(gaps), by_id=True)] if gaps else []
    return last_id, [*reads, extract.RowFilter(after_id=last_id, by_id=True)]


def _move_id_watermark(store, ctx, run_id, source, raw, last_id) -> int | None:  # type: ignore[no-untyped-def]
    """Record that `raw` (rows of an append-only table, in id order) was read past `last_id`:
    the watermark, and the ids it skipped or filled. Returns the new watermark."""
    ids = raw["id"].cast(pl.Int64, strict=False).drop_nulls()
    filled = ids.filter(ids <= last_id) if last_id is not None else ids.clear()
    skipped = skipped_ids(raw["id"], last_id)
    store.move_id_gaps(source, filled, skipped, ctx.run_started_at, run_id)
    last_id = _max_int(raw, "id", last_id)
    store.move_watermark(source, run_id, _utc_now(), last_id=last_id)
    return last_id


def _settle_id_gaps(store, settings, ctx, run_id, source, last_id) -> None:  # type: ignore[no-untyped-def]
    """After a read of an append-only table: forget the gaps it noted more than RECENT_IDS
    below its highest id, and those noticed longer than the lookback before it started,
    which it has looked for a last time (so every gap is looked for by at least one run
    after the one that noticed it, however late that starts)."""
    since = ctx.run_started_at - timedelta(seconds=settings.lookback_s)
    below = None if last_id is None else last_id - RECENT_IDS
    store.forget_id_gaps(source, since, run_id, below)


def _stage_tasks(raw, ctx, agents) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:  # type: ignore[no-untyped-def]
    """agent_performance rows as (valid rows, quarantine rows, task facts)."""
    valid, bad = _split_db(
        raw,
        "agent_performance",
        staging.stage_tasks,
        rules.task_rules(ctx),
        _located("agent_performance", "id"),
        pl.col("agent_id"),
    )
    return valid, bad, core.task_facts(valid.lazy(), agents.lazy()).collect()


@dataclass(frozen=True)
class ChangingTable:
    """A source table whose rows change after they are first read."""

    source: str
    table: str  # its core table
    source_key: str  # the row's key at the source
    core_key: str  # the same key in core
    key_type: type[pl.DataType]  # the core key's type
    stage_fn: Callable[[pl.LazyFrame], pl.LazyFrame]
    table_rules: list[rules.Rule]
    agent: pl.Expr  # the agent a quarantined row is filed under
    facts_fn: Callable[[pl.LazyFrame], pl.LazyFrame]


def _changing_tables(ctx: rules.RuleContext) -> list[ChangingTable]:
    sender_unknown = ~pl.col("sender_agent_id").is_in(ctx.known_agents.implode())
    return [
        ChangingTable(
            source="workflow_executions",
            table="fct_workflow_runs",
            source_key="workflow_id",
            core_key="workflow_id",
            key_type=pl.String,
            stage_fn=staging.stage_workflows,
            table_rules=rules.workflow_rules(ctx),
            agent=pl.col("initiator_agent_id"),
            facts_fn=lambda valid: core.latest_versions(core.workflow_facts(valid), "workflow_id"),
        ),
        ChangingTable(
            source="agent_communications",
            table="fct_messages",
            source_key="id",
            core_key="message_row_id",
            key_type=pl.Int64,
            stage_fn=staging.stage_messages,
            table_rules=rules.message_rules(ctx),
            agent=pl.coalesce(
                pl.when(sender_unknown).then(pl.col("sender_agent_id")),
                pl.col("receiver_agent_id"),
            ),
            facts_fn=core.message_facts,
        ),
    ]


def _extract_changed(con, store, settings, ctx, counts, run_id, full, changing, scans) -> None:  # type: ignore[no-untyped-def]
    """workflow_executions and agent_communications (`changing`): rows change, so each row
    read replaces its earlier version (or, when it is now bad, removes it). Rows are not read
    in the order of their updated_at, so each table commits once, with its watermark. A
    table's search for changed rows may have started already (`scans`, by source)."""
    for spec in changing:
        with store.transaction():
            _load_changed(
                con, store, settings, ctx, counts, run_id, full, spec, scans.get(spec.source)
            )


def _changed_since(
    store: StateStore, settings: Settings, source: str
) -> tuple[int | None, datetime | None, extract.RowFilter]:
    """The highest id read and the latest updated_at seen of a changing table, and the rows
    to read: those past that id and those changed since then, less the lookback; every row
    before any was seen."""
    read_up_to_id, seen = store.watermark(source)
    since = None if seen is None else seen - timedelta(seconds=settings.lookback_s)
    return read_up_to_id, seen, extract.RowFilter(changed_since=since, read_up_to_id=read_up_to_id)


def _load_changed(con, store, settings, ctx, counts, run_id, full, spec, scan) -> None:  # type: ignore[no-untyped-def]
    """One changing table (`spec`), inside the caller's transaction; its rows from `scan`
    when that search started earlier (with the same watermark: only this stage moves it)."""
    _ensure_core(store, spec.table, full=False)
    touched = Touched()
    read_up_to_id, seen, rows = _changed_since(store, settings, spec.source)
    # Without ids, the rows no watermark can place are read every time.
    has_ids = "id" in extract.SOURCE_TABLES[spec.source]
    if scan is None:
        scan = extract.iter_table(con, spec.source, SOURCE_BATCH_ROWS, rows)
    for raw in scan:
        latest = _replace_rows(store, ctx, counts, run_id, full, spec, raw, touched)
        if latest is not None and (seen is None or latest > seen):
            seen = latest
        if has_ids:
            read_up_to_id = _max_int(raw, "id", read_up_to_id)
    store.move_watermark(
        spec.source, run_id, _utc_now(), last_id=read_up_to_id, last_updated_at=seen
    )
    store.add_touched(touched.to_frame())


def _replace_rows(store, ctx, counts, run_id, full, spec, raw, touched) -> datetime | None:  # type: ignore[no-untyped-def]
    """Stage rows of a changing table and put them in place of their earlier versions;
    returns the latest updated_at among them."""
    source, table, source_key, core_key = spec.source, spec.table, spec.source_key, spec.core_key
    valid, bad = _split_db(
        raw, source, spec.stage_fn, spec.table_rules, _located(source, source_key), spec.agent
    )
    facts = spec.facts_fn(valid.lazy()).collect()
    keys = raw[source_key].cast(spec.key_type, strict=False)
    unchanged = 0
    if not full:
        before = store.rows_with_keys("core", table, core_key, keys.drop_nulls())
        # A row read again as it already is in core adds nothing: a duplicate.
        same = facts.join(before, on=facts.columns, how="semi", nulls_equal=True)
        facts = facts.join(same.select(core_key), on=core_key, how="anti")
        unchanged = same.height
        replaced = before.join(same.select(core_key), on=core_key, how="anti")
        # The periods of the earlier versions change too.
        touched.add(replaced, FACT_MOMENTS[table])
        if table == "fct_workflow_runs":
            touched.add_onward(replaced, FACT_MOMENTS[table])
        store.delete_keys("core", table, replaced.select(core_key))
        locations = raw.select(_located(source, source_key).alias("location"))
        store.forget_rejected(source, locations["location"])
    counts.setdefault(source, SourceCount(source)).add(
        raw.height, valid.height - unchanged, unchanged, bad.height
    )
    store.add_rejected(run_id, ctx.run_started_at, bad)
    store.append_table("core", table, facts)
    touched.add(facts, FACT_MOMENTS[table])
    if table == "fct_workflow_runs":
        touched.add_onward(facts, FACT_MOMENTS[table])
    return facts["updated_at"].max()  # type: ignore[return-value]


def _extract_metrics(con, store, settings, ctx, account, run_id) -> None:  # type: ignore[no-untyped-def]
    """business_metrics: append-only versions past the last id; the figures (restatements
    resolved) are recomputed from every version, which is small. One transaction."""
    with store.transaction():
        _load_metrics(con, store, settings, ctx, account, run_id)


def _load_metrics(con, store, settings, ctx, account, run_id) -> None:  # type: ignore[no-untyped-def]
    last_id, reads = _id_reads(store, "business_metrics")
    raw = pl.concat([extract.read_table(con, "business_metrics", rows) for rows in reads])
    valid, bad = _add_metric_versions(store, ctx, raw)
    account("business_metrics", raw.height, valid.height, bad)
    last_id = _move_id_watermark(store, ctx, run_id, "business_metrics", raw, last_id)
    _settle_id_gaps(store, settings, ctx, run_id, "business_metrics", last_id)


def _add_metric_versions(store, ctx, raw) -> tuple[pl.DataFrame, pl.DataFrame]:  # type: ignore[no-untyped-def]
    """Stage `business_metrics` rows (read, or released from the quarantine), add the valid
    ones as versions, and resolve the figures again from every version; (valid, bad)."""
    _ensure_core(store, "fct_business_metric_versions", full=False)
    valid, bad = _split_db(
        raw,
        "business_metrics",
        staging.stage_business_metrics,
        rules.business_metric_rules(ctx),
        _located("business_metrics", "id"),
        pl.lit(None),
    )
    versions = core.business_metric_versions(valid.lazy()).collect()
    store.append_table("core", "fct_business_metric_versions", versions)
    touched = Touched(business=versions.height > 0)
    touched.add(
        versions.with_columns(pl.col("metric_date").cast(pl.Datetime("us"))), ["metric_date"]
    )
    all_versions = store.query("SELECT * FROM core.fct_business_metric_versions")
    store.replace_table(
        "core", "fct_business_metrics", core.resolve_restatements(all_versions.lazy()).collect()
    )
    store.add_touched(touched.to_frame())
    return valid, bad


EVENT_CORE_TABLES = [
    "fct_heartbeats",
    "fct_resource_samples",
    "fct_agent_errors",
    "fct_other_events",
]


def extract_logs(
    settings: Settings,
    known_agents: pl.Series,
    run_started_at: datetime,
    store: StateStore,
    run_id: str,
) -> Loaded:
    """Read the log files not read before, decode, type, split off bad lines, and load the
    events that are not in core yet. Each batch of files commits with their manifest entries
    (ops.log_files) and the dates it touched, so a run stopped at any point leaves every file
    either read or not.

    A file whose text repeats one already read (delivered twice under another name) is
    recorded but adds nothing: its lines count as duplicates. On a full refresh the manifest
    is empty (see extract_registry), so every file is read again."""
    count = SourceCount("logs")
    ctx = rules.RuleContext(run_started_at, known_agents)
    event_rules = rules.log_event_rules(ctx)
    interval_s = settings.kpi.heartbeat_interval_s
    listed, dirs = extract.list_changed_log_files(
        settings.logs_dir, store.log_dirs(), time.time_ns()
    )
    read_before = store.log_files_read([f.path for f in listed])
    files = [f for f in listed if f.path not in read_before]
    # Only texts read by earlier runs are looked up (this run's own are known as it reads):
    # a first run or a full refresh, which reads every file, has none to look up.
    texts_read = store.log_texts_read if store.has_read_log_files() else None
    for lines, read in extract.read_new_log_lines(settings.logs_dir, files, texts_read):
        copied = int(read.filter(pl.col("copy_of").is_not_null())["lines"].sum())
        events = _stage_log_lines(
            lines,
            event_rules,
            interval_s,
            read_offset=count.read,
            raw_text=lambda bad: extract.raw_log_lines(settings.logs_dir, bad),
        )
        with store.transaction():
            loaded = events.load(store, run_id, run_started_at)
            store.add_log_files(
                read.with_columns(
                    pl.lit(run_id).alias("run_id"), pl.lit(_utc_now()).alias("read_at")
                )
            )
        count.add(lines.height + copied, loaded, events.valid - loaded + copied, events.bad.height)
    with store.transaction():  # every file listed is read: its directory need not be again
        store.replace_log_dirs(dirs)
    return Loaded(known_agents=known_agents, counts={"logs": count})


@dataclass
class StagedEvents:
    """Decoded log lines, staged: the facts per core table, the quarantine rows, what they
    touch, and how many lines were valid."""

    facts: dict[str, pl.DataFrame]
    bad: pl.DataFrame
    touched: Touched
    valid: int

    def load(self, store: StateStore, run_id: str, run_started_at: datetime) -> int:
        """Insert the events not in core yet, quarantine the bad lines, note the touched
        dates; returns the events inserted. Inside the caller's transaction."""
        loaded = sum(
            store.insert_new_events(table, frame, core.EVENT_KEY)
            for table, frame in self.facts.items()
        )
        store.add_rejected(run_id, run_started_at, self.bad)
        store.add_touched(self.touched.to_frame())
        return loaded


def _stage_log_lines(
    lines: pl.DataFrame,
    event_rules: list[rules.Rule],
    interval_s: float,
    read_offset: int,
    raw_text: Callable[[pl.DataFrame], pl.DataFrame],
) -> StagedEvents:
    """Stage decoded lines (extract.LOG_LINE_COLUMNS). `raw_text` adds the raw text
    (`raw_payload`) to the bad lines' (file, line_no)."""
    staged = staging.stage_log_events(
        lines.lazy().with_row_index("read_order", offset=read_offset)
    ).collect()
    valid, bad = rules.split_by_rules(staged, event_rules)
    if bad.height:
        bad = _quarantine_rows(
            raw_text(bad.sort("file", "line_no")),
            "logs",
            pl.format("{}:{}", "file", "line_no"),
            pl.col("agent_id"),
            pl.col("raw_payload"),
        )
    else:
        bad = pl.DataFrame()
    facts = {table: frame.collect() for table, frame in core.event_facts(valid.lazy()).items()}
    touched = Touched()
    for table, frame in facts.items():
        touched.add(frame, ["ts"], interval_s if table == "fct_heartbeats" else 0.0)
    return StagedEvents(facts, bad, touched, valid.height)


# ---------------------------------------------------------------------------------------------
# Marts


# The moments that place as_of where there is no heartbeat at all.
ACTIVITY_MOMENTS = [
    ("fct_task_runs", "completed_at"),
    ("fct_workflow_runs", "started_at"),
    ("fct_workflow_runs", "completed_at"),
    ("fct_messages", "sent_at"),
    ("fct_messages", "received_at"),
    ("fct_messages", "responded_at"),
    ("fct_resource_samples", "ts"),
    ("fct_agent_errors", "ts"),
]


def warehouse_as_of(store: StateStore, at_least: datetime | None = None) -> datetime | None:
    """as_of over everything in core (the rule itself lives in transforms.marts.as_of).
    `at_least`: the last as_of, from which the latest heartbeat is looked for first
    (`StateStore.newest`; exact either way)."""
    latest_beat = store.newest("core.fct_heartbeats", "ts", since=at_least)
    beats = pl.LazyFrame({"ts": [latest_beat]}, schema={"ts": pl.Datetime("us")})
    # The other facts count only without any heartbeat: otherwise their eight scans, which
    # an hourly run would wait for, are skipped.
    maxima = (
        []
        if latest_beat is not None
        else [store.newest(f"core.{t}", c) for t, c in ACTIVITY_MOMENTS]
    )
    activity = pl.LazyFrame({"ts": maxima}, schema={"ts": pl.Datetime("us")})
    return marts.as_of(beats, activity).collect().item()


# The moments whose dates span the marts' days (with as_of's date).
BOUNDING_MOMENTS = [
    ("dim_agents", "deployed_at"),
    ("fct_task_runs", "completed_at"),
    ("fct_workflow_runs", "started_at"),
    ("fct_messages", "sent_at"),
    ("fct_messages", "received_at"),
    ("fct_heartbeats", "ts"),
    ("fct_resource_samples", "ts"),
    ("fct_agent_errors", "ts"),
]


def activity_bounds(
    store: StateStore, covered: tuple[date, date] | None = None
) -> tuple[date | None, date | None]:
    """The first and the last date of any BOUNDING_MOMENTS in core.

    `covered`: dates the marts already span, which an incremental run only widens (its rows
    are added or replace rows with the same id). Then only the moments outside them are
    looked at: DuckDB skips every row group whose zone map lies inside, where a scan of
    whole columns would cost a second on a year of history (tables changed since their
    last checkpoint have no exact minimum to give)."""
    where, params = "", []
    if covered is not None:
        where = " WHERE {c} < ? OR {c} >= ?"
        below = datetime.combine(covered[0], datetime.min.time())
        above = datetime.combine(covered[1] + timedelta(days=1), datetime.min.time())
        params = [below, above] * len(BOUNDING_MOMENTS)
    union = " UNION ALL ".join(
        f"SELECT min({c}) AS lo, max({c}) AS hi FROM core.{t}" + where.format(c=c)
        for t, c in BOUNDING_MOMENTS
    )
    row = store.con.execute(f"SELECT min(lo)::DATE, max(hi)::DATE FROM ({union})", params)
    lo, hi = row.fetchone()  # type: ignore[misc]
    if covered is None:
        return lo, hi
    return min(covered[0], lo or covered[0]), max(covered[1], hi or covered[1])


def days_covered(
    touched: Touched,
    before: dict[str, pl.DataFrame],
    before_as_of: datetime | None,
    as_of_ts: datetime,
) -> tuple[date, date] | None:
    """The first and the last day the marts `before` span, when this run may recompute only
    some of their periods; None when it recomputes them all (nothing before, a changed
    registry, a full refresh, an earlier as_of)."""
    if touched.everything or before_as_of is None or as_of_ts < before_as_of:
        return None
    if any(name not in before for name in PERIOD_MART_NAMES):
        return None
    days = before["system_kpis"].filter(pl.col("period") == "day")["period_start"]
    return None if days.is_empty() else (days.min(), days.max())  # type: ignore[return-value]


def partitions(periods: pl.DataFrame) -> list[pl.DataFrame]:
    """Split requested periods into month partitions: a month, its days, and the weeks that
    start in it. Each partition needs only the facts of its own date range."""
    keyed = periods.with_columns(pl.col("period_start").dt.truncate("1mo").alias("_partition"))
    return [
        part.drop("_partition")
        for _, part in keyed.sort("_partition", *PERIOD_KEYS).group_by(
            "_partition", maintain_order=True
        )
    ]


def load_facts(store: StateStore, start: date, end: date, interval_s: float) -> marts.Facts:
    """The core facts a partition covering dates [start, end) needs (queried side by side)."""
    lo = datetime.combine(start, datetime.min.time())
    hi = datetime.combine(end, datetime.min.time())
    beat_lo = lo - timedelta(seconds=interval_s)
    queries = {
        "agents": ("SELECT * FROM core.dim_agents", []),
        "tasks": (
            f"SELECT {', '.join(marts.TASK_COLUMNS_USED)} FROM core.fct_task_runs "
            "WHERE completed_at >= ? AND completed_at < ?",
            [lo, hi],
        ),
        # Sent in the range, or received in it: two ranges rather than an OR, so that
        # DuckDB's zone maps skip the row groups outside each (an OR reads every row).
        "messages": (
            "SELECT * FROM core.fct_messages WHERE sent_at >= ? AND sent_at < ? UNION ALL "
            "SELECT * FROM core.fct_messages WHERE received_at >= ? AND received_at < ? "
            "AND NOT coalesce(sent_at >= ? AND sent_at < ?, false)",
            [lo, hi, lo, hi, lo, hi],
        ),
        "workflows": ("SELECT * FROM core.fct_workflow_runs", []),
        "heartbeats": (
            f"SELECT {', '.join(marts.HEARTBEAT_COLUMNS_USED)} FROM core.fct_heartbeats "
            "WHERE ts >= ? AND ts < ?",
            [beat_lo, hi],
        ),
        "resources": (
            f"SELECT {', '.join(marts.RESOURCE_COLUMNS_USED)} FROM core.fct_resource_samples "
            "WHERE ts >= ? AND ts < ?",
            [lo, hi],
        ),
        "errors": ("SELECT * FROM core.fct_agent_errors WHERE ts >= ? AND ts < ?", [lo, hi]),
    }
    frames = store.query_all(list(queries.values()))
    return marts.Facts(**{name: frame.lazy() for name, frame in zip(queries, frames, strict=True)})


def empty_marts() -> dict[str, pl.DataFrame]:
    """Every mart with its columns and no rows (a warehouse with no data yet)."""
    agents = core.empty("dim_agents")
    facts = marts.Facts(
        agents=agents,
        tasks=core.empty("fct_task_runs"),
        messages=core.empty("fct_messages"),
        workflows=core.empty("fct_workflow_runs"),
        heartbeats=core.empty("fct_heartbeats"),
        resources=core.empty("fct_resource_samples"),
        errors=core.empty("fct_agent_errors"),
    )
    periods = periods_overlapping(date(2000, 1, 1), date(2000, 1, 1)).clear().lazy()
    epoch = datetime(2000, 1, 1)
    params = marts.KpiParams()
    out = marts.period_marts(facts, core.empty("fct_business_metrics"), periods, epoch, params)
    out["business_value"] = marts.business_value(
        core.empty("fct_business_metrics"),
        core.empty("dim_business_targets"),
        out["agent_kpis"].lazy().select("period_start", "operating_cost_usd"),
        None,
        params,
    ).collect()
    out["agent_health"] = marts.agent_health(facts, epoch, params).collect()
    out["alerts"] = marts.alerts(out["agent_kpis"].lazy(), params).collect()
    return out


def previous_as_of(store: StateStore) -> datetime | None:
    """The as_of of the marts last published."""
    value = store.scalar(
        "SELECT as_of FROM ops.pipeline_runs WHERE source = '*' AND run_status = 'succeeded' "
        "ORDER BY run_finished_at DESC LIMIT 1"
    )
    return value if isinstance(value, datetime) else None


def requested_periods(
    touched: Touched,
    first: date,
    last: date,
    before: dict[str, pl.DataFrame],
    before_as_of: datetime | None,
    as_of_ts: datetime,
) -> pl.DataFrame | None:
    """The periods an incremental run recomputes, or None for all of them: those containing
    a touched date, a date the marts did not cover yet, or a date between the old and the new
    as_of (whose rows depend on as_of)."""
    covered = days_covered(touched, before, before_as_of, as_of_ts)
    if covered is None:
        return None
    old_first, old_last = covered
    spans = [] if as_of_ts == before_as_of else [(before_as_of.date(), as_of_ts.date())]
    if first < old_first:
        spans.append((first, old_first))
    if last > old_last:
        spans.append((old_last, last))
    days = pl.concat(
        [
            touched.dates(last),
            *[pl.date_range(lo, hi, eager=True).rename("day") for lo, hi in spans],
        ]
    )
    # A date after the last one (a business figure for a day without activity yet) still
    # changes the week and the month it falls in, if they start by the last date.
    periods = periods_containing(days.filter(days >= first))
    return periods.filter(pl.col("period_start") <= last)


def build_marts(
    store: StateStore,
    settings: Settings,
    touched: Touched,
    as_of_ts: datetime | None,
    before_as_of: datetime | None,
    before: dict[str, pl.DataFrame],
) -> dict[str, pl.DataFrame]:
    """The marts as of `as_of_ts` (warehouse_as_of) after this run's changes to core: the
    periods it touched are recomputed, one month partition at a time, and replace their
    earlier rows; the rest stay as they were (`before`, the marts last published, as of
    `before_as_of`). `business_value`, `agent_health` and `alerts` are recomputed whole
    (they are small)."""
    params = settings.kpi
    if as_of_ts is None:
        return empty_marts()
    before_health = before.get("agent_health")
    first, last = activity_bounds(store, days_covered(touched, before, before_as_of, as_of_ts))
    if first is None or last is None:
        return empty_marts()
    last = max(last, as_of_ts.date())
    requested = requested_periods(touched, first, last, before, before_as_of, as_of_ts)
    if requested is None:
        requested, before = periods_overlapping(first, last), {}
    elif requested.is_empty() and not touched.business and all(n in before for n in MART_NAMES):
        return {name: before[name] for name in MART_NAMES}  # nothing changed
    business = store.query("SELECT * FROM core.fct_business_metrics").lazy()
    parts: dict[str, list[pl.DataFrame]] = {}
    for name in PERIOD_MART_NAMES:
        if name in before:
            kept = before[name].join(requested.select(PERIOD_KEYS), on=PERIOD_KEYS, how="anti")
            parts[name] = [kept]
    chunks = partitions(requested)
    for number, partition in enumerate(chunks, start=1):
        log.info(
            "marts: partition %d of %d (%s, %d periods)",
            number,
            len(chunks),
            partition["period_start"].min(),
            partition.height,
        )
        start = partition["period_start"].min()
        end = partition["period_end"].max()
        facts = load_facts(store, start, end, params.heartbeat_interval_s)
        for name, frame in marts.period_marts(
            facts, business, partition.lazy(), as_of_ts, params
        ).items():
            parts.setdefault(name, []).append(frame)
    out = {
        name: pl.concat(frames, how="vertical_relaxed").sort(MART_KEYS[name])
        for name, frames in parts.items()
    }
    if len(out) < len(PERIOD_MART_NAMES):  # nothing requested and nothing before
        out = {**empty_marts(), **out}
    agent_days = out["agent_kpis"].lazy().filter(pl.col("period") == "day")
    out["business_value"] = marts.business_value(
        business,
        store.query("SELECT * FROM core.dim_business_targets").lazy(),
        agent_days.select("period_start", "operating_cost_usd"),
        as_of_ts,
        params,
    ).collect()
    day_before = as_of_ts - timedelta(hours=24)
    health_facts = marts.Facts(
        agents=store.query("SELECT * FROM core.dim_agents").lazy(),
        tasks=store.query(
            "SELECT * FROM core.fct_task_runs WHERE completed_at > ? AND completed_at <= ?",
            [day_before, as_of_ts],
        ).lazy(),
        messages=store.query(
            "SELECT * FROM core.fct_messages WHERE received_at > ? AND received_at <= ?",
            [day_before, as_of_ts],
        ).lazy(),
        workflows=core.empty("fct_workflow_runs"),
        heartbeats=latest_heartbeats(store, touched, before_health).lazy(),
        resources=core.empty("fct_resource_samples"),
        errors=core.empty("fct_agent_errors"),
    )
    out["agent_health"] = marts.agent_health(health_facts, as_of_ts, params).collect()
    out["alerts"] = marts.alerts(agent_days, params).collect()
    return {name: out[name] for name in MART_NAMES}


def latest_heartbeats(
    store: StateStore, touched: Touched, before_health: pl.DataFrame | None
) -> pl.DataFrame:
    """Heartbeat rows among which lies each agent's latest (marts.agent_health keeps the
    latest of each agent's).

    Heartbeats are only ever added, and those added since the agent_health last published
    (`before_health`) lie in the touched days: each agent's latest is the one it names or
    one of those days'. So only those days are read, not years of heartbeats; all of them
    only when there is nothing to start from (a first run, a full refresh, a new
    registry)."""
    if touched.everything or before_health is None:
        # Each agent's latest moment first (one column), then only the row groups from the
        # earliest of them on.
        return store.query(
            "WITH last AS (SELECT agent_id, max(ts) AS ts FROM core.fct_heartbeats "
            "GROUP BY agent_id) "
            "SELECT h.* FROM core.fct_heartbeats h SEMI JOIN last USING (agent_id, ts) "
            "WHERE h.ts >= (SELECT min(ts) FROM last)"
        )
    named = before_health["last_heartbeat_at"].drop_nulls().dt.date()
    days = pl.concat([named.rename("day").to_frame(), *touched.days])["day"]
    ranges = [
        f"SELECT * FROM core.fct_heartbeats WHERE ts >= TIMESTAMP '{first}' "
        f"AND ts < TIMESTAMP '{end}'"
        for first, end in day_ranges(days)
    ]
    if not ranges:
        return store.query("SELECT * FROM core.fct_heartbeats LIMIT 0")
    # One range query each (an OR of ranges would read every row group).
    return store.query(" UNION ALL ".join(ranges))


def day_ranges(days: pl.Series) -> list[tuple[date, date]]:
    """The distinct `days` as ranges of consecutive days: (first day, the day after the
    last), in order."""
    ordered = days.drop_nulls().unique().sort().to_list()
    ranges: list[tuple[date, date]] = []
    for day in ordered:
        if ranges and ranges[-1][1] == day:
            ranges[-1] = (ranges[-1][0], day + timedelta(days=1))
        else:
            ranges.append((day, day + timedelta(days=1)))
    return ranges


# ---------------------------------------------------------------------------------------------
# Checks


def check_results_frame(run_id: str, results: list[CheckResult], at: datetime) -> pl.DataFrame:
    """Validation results as rows of ops.validation_results."""
    return pl.DataFrame(
        {
            "run_id": [run_id] * len(results),
            "suite": [r.suite for r in results],
            "table_name": [r.table for r in results],
            "expectation": [r.expectation for r in results],
            "column_name": [r.column for r in results],
            "success": [r.success for r in results],
            "observed": [r.observed for r in results],
            "details": [r.details for r in results],
            "validated_at": [at] * len(results),
        },
        schema={
            "run_id": pl.String,
            "suite": pl.String,
            "table_name": pl.String,
            "expectation": pl.String,
            "column_name": pl.String,
            "success": pl.Boolean,
            "observed": pl.String,
            "details": pl.String,
            "validated_at": pl.Datetime("us"),
        },
    )


# ---------------------------------------------------------------------------------------------
# The run


def _run_rows(result: RunResult, mode: str, started: datetime, finished: datetime) -> pl.DataFrame:
    counts = list(result.counts.values())
    total = SourceCount("*")
    for c in counts:
        total.merge(c)
    rows = [*counts, total]
    return pl.DataFrame(
        {
            "run_id": [result.run_id] * len(rows),
            "source": [c.source for c in rows],
            "rows_read": [c.read for c in rows],
            "rows_loaded": [c.loaded for c in rows],
            "rows_duplicate": [c.duplicates for c in rows],
            "rows_quarantined": [c.quarantined for c in rows],
            "rows_from_quarantine": [c.from_quarantine for c in rows],
            "run_mode": [mode] * len(rows),
            "run_status": [result.status] * len(rows),
            "run_started_at": [started] * len(rows),
            "run_finished_at": [finished] * len(rows),
            "as_of": [result.as_of] * len(rows),
            "message": [result.message] * len(rows),
        },
        schema_overrides={"as_of": pl.Datetime("us"), "run_finished_at": pl.Datetime("us")},
    )


@cache
def freeze_imports() -> None:
    """Put every object alive now out of the garbage collector's sight, once per process:
    the modules and what importing them built (about 280,000 objects with GX, Prefect and
    pandas). A full collection otherwise walks them all, holding the GIL, whenever it runs:
    0.28 s in an hourly run, a stall for every thread. Objects made later are collected as
    before; these are never freed, as modules never are."""
    gc.freeze()


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def run_pipeline(
    settings: Settings,
    *,
    stage: Stage = plain_stage,
    run_started_at: datetime | None = None,
    full_refresh: bool = False,
    backfill: tuple[date, date] | None = None,
) -> RunResult:
    """One run: incremental (what is new since the last run), or with `full_refresh` (or on
    a new warehouse) everything from the sources. `backfill` (first, last date) also
    recomputes every period overlapping those dates. Raises PipelineError (with a one-line
    reason) when the run fails; the previously published marts then stay as they were."""
    freeze_imports()
    started = run_started_at or _utc_now()
    began = time.perf_counter()
    run_id = started.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    result = RunResult(run_id=run_id, status="running", warehouse=settings.warehouse)
    clock = StageClock(run_id)
    try:
        store = StateStore(state_path_for(settings.warehouse))
    except duckdb.IOException as error:  # e.g. another run holds it: one writer at a time
        raise PipelineError(f"state database: {str(error).splitlines()[0]}") from None
    recorded = 0  # how many stage timings are already recorded (with the run's record)
    mode = "full" if full_refresh else "incremental"
    if backfill is not None and backfill[0] > backfill[1]:
        raise PipelineError(f"backfill: {backfill[0]} is after {backfill[1]}")
    try:
        # The first run, and a run on a state without watermarks, read everything.
        full = full_refresh or not store.has_table("core", "fct_task_runs")
        mode = "full" if full else "incremental"
        store.drop_stage()
        retry = {"retries": settings.extract_retries, "retry_delay_s": settings.retry_delay_s}
        with clock.stage("extract_registry") as info:
            registry = stage(extract_registry, **retry)(settings, started, store, run_id, full)
            info["rows"] = sum(c.read for c in registry.counts.values())
        if registry.rebuilt:
            log.warning("%s", registry.rebuilt)
            full = True
            mode = "full"

        def tables() -> Loaded:
            with clock.stage("extract_database") as info, store.sibling() as own:
                db = stage(extract_database, **retry)(
                    settings, registry, started, own, run_id, full
                )
                info["rows"] = sum(c.read for c in db.counts.values())
            return db

        def logs() -> Loaded:
            with clock.stage("extract_logs") as info, store.sibling() as own:
                loaded = stage(extract_logs, **retry)(
                    settings, registry.known_agents, started, own, run_id
                )
                info["rows"] = loaded.counts["logs"].read
            return loaded

        def last_marts() -> dict[str, pl.DataFrame]:
            # The marts last published: the build keeps their untouched rows, and publication
            # replaces only the rows that changed (read once: only this run writes them, and
            # not before the build).
            with store.sibling() as own:
                return own.marts()

        # The tables and the logs load side by side: one waits on SQLite or the disk while
        # the other decodes, and each commits only its own rows.
        result.counts = registry.counts
        *loads, before = side_by_side(tables, logs, last_marts)  # type: ignore[arg-type]
        for loaded in loads:
            for source, count in loaded.counts.items():  # type: ignore[union-attr]
                result.counts.setdefault(source, SourceCount(source)).merge(count)
        # What this run and any earlier unpublished run changed (ops.touched_days).
        touched = Touched.from_frame(store.touched())
        if backfill is not None:
            mode = "backfill" if not full else mode
            first_day, last_day = backfill
            span = pl.DataFrame({"day": pl.date_range(first_day, last_day, eager=True)})
            touched.days.append(span)
        before_as_of = previous_as_of(store)
        result.as_of = as_of = warehouse_as_of(store, at_least=before_as_of)
        # An incremental run checks the input of the days it touched; a full one, all of it.
        days = None if touched.everything or as_of is None else touched.dates(as_of.date())

        def build() -> dict[str, pl.DataFrame]:
            with clock.stage("build_marts") as info, store.sibling() as own:
                built = stage(build_marts)(own, settings, touched, as_of, before_as_of, before)
                info["rows"] = sum(frame.height for frame in built.values())
            return built

        def check_input() -> list[CheckResult]:
            with clock.stage("validate_input") as info, store.sibling() as own:
                checks = stage(validate_input)(own, days)
                info["rows"] = len(checks)
            return checks

        # The input is checked while the marts are built (core only). A full run's checks
        # beside its build, interleaved on a year's state: 31.5 / 29.4 / 24.0 s against
        # 35.1 / 37.6 / 31.4 s one after the other, with peaks of 3.2 to 3.5 GB.
        built, checked = side_by_side(build, check_input)  # type: ignore[misc]
        unchanged = (
            backfill is None
            and not touched.everything
            and not touched.days
            and touched.onward_from is None
            and not touched.business
            and as_of == before_as_of
        )

        def check_output() -> list[CheckResult]:
            with clock.stage("validate_output") as info:
                checks = stage(validate_output)(built)
                info["rows"] = len(checks)
            return checks

        def write_new_file() -> None:
            with clock.stage("write_marts") as info:
                stage(write_marts)(settings.warehouse, run_id, built, carry_over=not full)
                info["rows"] = sum(frame.height for frame in built.values())

        with store.sibling() as marts_writer:

            def checkpoint_and_prepare() -> None:
                # What the extract wrote goes from the WAL into the state's file, so that the
                # checkpoint closing the run has only the publication's rows left; then the
                # state's marts are replaced in a transaction that commits once the checks
                # pass (closing its connection without that rolls it back).
                marts_writer.checkpoint()
                marts_writer.prepare_marts(built, current=before)

            # The file to publish gets its marts while they are checked (it is swapped in only
            # if they pass), and so does the state.
            output_checks, *_ = side_by_side(  # type: ignore[misc]
                check_output,
                write_new_file,  # type: ignore[arg-type]
                checkpoint_and_prepare,  # type: ignore[arg-type]
            )
            result.checks = checked + output_checks
            store.record_validation(check_results_frame(run_id, result.checks, _utc_now()))
            failed = result.failed_checks
            if failed:
                names = ", ".join(
                    sorted({f"{c.table}: {c.expectation}({c.column})" for c in failed})
                )
                raise ValidationFailed(
                    f"{len(failed)} mart check(s) failed, nothing published: {names}"
                )
            with clock.stage("publish"):
                marts_writer.commit()
                result.status = "succeeded"
                result.message = "no new data; marts unchanged" if unchanged else "published"
                if registry.rebuilt:
                    result.message += f" ({registry.rebuilt})"
                # The run's own record goes into the published file with the marts.
                store.record_run(_run_rows(result, mode, started, _utc_now()))
                store.record_timings(pl.DataFrame(clock.rows, schema=_TIMING_SCHEMA))
                recorded = len(clock.rows)
                stage(publish)(store, settings.warehouse, run_id)
    except (PipelineError, extract.SourceError) as error:
        result.status = "failed"
        result.message = str(error)
    except Exception as error:
        result.status = "failed"
        result.message = one_line(error)
        raise
    finally:
        if result.status != "succeeded":
            discard(settings.warehouse, run_id)
        result.timings = clock.rows
        store.record_timings(pl.DataFrame(clock.rows[recorded:], schema=_TIMING_SCHEMA))
        if not recorded or result.status == "failed":
            store.con.execute("DELETE FROM ops.pipeline_runs WHERE run_id = ?", [run_id])
            store.record_run(_run_rows(result, mode, started, _utc_now()))
        store.close()  # its checkpoint is part of the run
        result.elapsed_s = time.perf_counter() - began
    if result.status == "failed":
        raise PipelineError(result.message)
    return result


_TIMING_SCHEMA = {
    "run_id": pl.String,
    "stage": pl.String,
    "seconds": pl.Float64,
    "rows": pl.Int64,
    "peak_rss_mb": pl.Float64,
}


STAGED_SAMPLE_ROWS = 200_000
# The exact key check groups at most about this many rows at a time: a year's heartbeats
# (15.4M rows) by their hash in one part, within the state's 1 GB memory limit.
KEY_CHECK_ROWS = 16_000_000
# The exact key check groups the keys' hash first (see `_keys_unique`).
KEY_HASH = "hash({columns})"


# The date by which an incremental run checks only the core rows it touched.
CHECKED_BY_DATE = {
    "fct_task_runs": "completed_at",
    "fct_messages": "sent_at",
    "fct_heartbeats": "ts",
    "fct_resource_samples": "ts",
    "fct_agent_errors": "ts",
    "fct_other_events": "ts",
}


def validate_output(built: dict[str, pl.DataFrame]) -> list[CheckResult]:
    """Great Expectations over every mart built, and the checks across marts (a stage of its
    own, so that Prefect shows it as a task)."""
    return validate_marts(built)


def validate_input(store: StateStore, days: pl.Series | None = None) -> list[CheckResult]:
    """Great Expectations over the staged input (core).

    With `days` (an incremental run), the large fact tables are checked on the rows of those
    days only: the input this run touched. A core table (or its checked rows) larger than
    STAGED_SAMPLE_ROWS is checked by GX on a repeatable sample of about that many rows (GX costs
    seconds per million rows); its key is checked for uniqueness on every row, in DuckDB
    (the checked rows' keys against the whole table; see `_keys_unique`). So are the keys of
    checked days that do not hold their moment (task_id, message_id), however few the rows:
    the rows that repeat them may lie on days not checked.
    """
    staged: dict[str, pl.DataFrame] = {}
    exact: list[CheckResult] = []
    if days is not None:
        store.con.register("_checked_days", days.rename("day").cast(pl.Date).to_frame())
        first, last = (f"DATE '{d or date.min}'" for d in (days.min(), days.max()))
    try:
        for table in core.CORE_SCHEMAS:
            if not store.has_table("core", table):
                continue
            whole = source = f"core.{table}"
            if days is not None and table in CHECKED_BY_DATE:
                column = CHECKED_BY_DATE[table]
                # The range lets DuckDB skip the row groups outside it (zone maps).
                source = (
                    f"(SELECT * FROM core.{table} WHERE {column} >= {first} "
                    f"AND {column} < {last} + INTERVAL 1 DAY "
                    f"AND CAST({column} AS DATE) IN (SELECT day FROM _checked_days))"
                )
            rows = store.scalar(f"SELECT count(*) FROM {source}")
            if source != whole and rows == store.scalar(f"SELECT count(*) FROM {whole}"):
                # Every row is checked (a backfill of the whole history, say): as the whole
                # table, sampled by rowid, with no join for its keys. A year's backfill took
                # 42 s for these checks on one worker, a full run's 7 s.
                source = whole
            keys = STAGED_KEYS.get(table, ())
            # GX sees only the rows handed to it. Their keys are counted in DuckDB, against
            # the whole table, when that is more: a sample of a large table, or checked
            # days whose keys may repeat on other days (a task_id has no moment in it).
            elsewhere = source != whole and CHECKED_BY_DATE.get(table) not in keys
            if keys and (rows > STAGED_SAMPLE_ROWS or elsewhere):
                exact.append(_keys_unique(store, table, source, list(keys), rows))
            if rows <= STAGED_SAMPLE_ROWS:
                staged[table] = store.query(f"SELECT * FROM {source}")
                continue
            if source == whole:
                # Every k-th row by rowid: spread over the whole table, the same rows every
                # time, and a sixth of a reservoir sample's cost (no full read of every column).
                step = -(-rows // STAGED_SAMPLE_ROWS)
                sample = f"SELECT * FROM {source} WHERE rowid % {step} = 0"
            else:
                sample = (
                    f"SELECT * FROM {source} "
                    f"USING SAMPLE reservoir({STAGED_SAMPLE_ROWS} ROWS) REPEATABLE (7)"
                )
            staged[table] = store.query(sample)
    finally:
        if days is not None:
            store.con.unregister("_checked_days")
    return validate_staged(staged) + exact


def _keys_unique(
    store: StateStore, table: str, source: str, keys: list[str], rows: int
) -> CheckResult:
    """Whether the keys of the checked rows (`source`) occur once each in the whole table,
    counted exactly, in two steps. First the keys' hashes (KEY_HASH) are sorted, in NumPy:
    equal keys have equal hashes, so where no hash repeats no key does. Then only the rows of
    a repeated hash are grouped by the keys themselves, in DuckDB, so that two keys sharing a
    hash are not counted as a repeat. On a year's state (15.3M tasks, 15.4M heartbeats),
    alone: 3.6 and 5.4 s grouping the hashes in DuckDB (one thread), 0.8 and 0.7 s sorting
    them (most of it DuckDB computing and handing them over).

    In parts of at most about KEY_CHECK_ROWS rows split by the hash (equal keys fall in the
    same part, so the sum over the parts is exact): 128 MB of hashes at a time beside what
    the run already holds."""
    columns = ", ".join(keys)
    params: list[object] = []
    if source == f"core.{table}" or CHECKED_BY_DATE.get(table) in keys:
        # Checked by a moment in their key (heartbeats by `ts`), equal keys share it, so
        # every row that could repeat a checked key is itself among the checked rows.
        checked = source
    else:
        # A row repeating a checked key lies within the checked keys' range, column by
        # column: DuckDB then skips the row groups outside it (task ids grow with time). An
        # hourly run's tasks on three years of history: 0.46 s, 0.01 s with the range.
        bounds = store.con.execute(
            f"SELECT {', '.join(f'min({k}), max({k})' for k in keys)} FROM {source}"
        ).fetchone()
        params = list(bounds or ())
        within = " AND ".join(f"{k} BETWEEN ? AND ?" for k in keys)
        checked = (
            f"(SELECT {columns} FROM core.{table} WHERE {within}) "
            f"SEMI JOIN (SELECT {columns} FROM {source}) USING ({columns})"
        )
    hashed = f"SELECT {KEY_HASH.format(columns=columns)} AS _h, {columns} FROM {checked}"
    parts = max(1, -(-rows // KEY_CHECK_ROWS))
    repeated = 0
    for part in range(parts):
        where = f"WHERE _h % {parts} = {part}" if parts > 1 else ""
        hashes = store.con.execute(f"SELECT _h FROM ({hashed}) {where}", params).fetchnumpy()
        twice = _repeated_values(hashes["_h"])
        if len(twice):
            with registered(store.con, "_twice", pl.DataFrame({"h": twice})):
                repeated += store.scalar(
                    f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n "
                    f"FROM ({hashed}) WHERE _h IN (SELECT h FROM _twice) "
                    f"GROUP BY {columns} HAVING count(*) > 1)",
                    params,
                )  # type: ignore[operator]
    return CheckResult(
        suite="staged",
        table=f"core.{table}",
        expectation="expect_compound_columns_to_be_unique (exact, DuckDB)",
        column="+".join(keys),
        success=repeated == 0,
        observed=f"{repeated} repeated keys in {rows} rows",
        details=json.dumps({"column_list": list(keys), "rows": rows}),
    )


def _repeated_values(values: np.ndarray) -> np.ndarray:
    """The values that occur more than once in `values` (sorted in place), each once."""
    values.sort()
    return np.unique(values[1:][values[1:] == values[:-1]])
