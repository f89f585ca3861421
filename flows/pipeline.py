"""The pipeline: extract → stage and quarantine → core → marts → checks → publish.

`run_pipeline` is plain Python, so it can be tested without Prefect; `flows/prefect_flows.py`
runs the same stages as Prefect tasks (with retries on the extract) by passing a `stage`
wrapper. Every stage's duration, row count and the process's peak memory are recorded in
`ops.stage_timings` and logged.
"""

from __future__ import annotations

import json
import logging
import resource
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from flows import extract
from flows.settings import Settings
from quality import rules
from quality.expectations import STAGED_KEYS, CheckResult, validate_marts, validate_staged
from transforms import core, marts, staging
from transforms.periods import PERIOD_KEYS, periods_overlapping
from warehouse.catalog import MART_KEYS
from warehouse.publish import publish
from warehouse.store import StateStore, state_path_for

log = logging.getLogger("agentkpi")

SOURCE_BATCH_ROWS = 1_000_000
MART_NAMES = list(MART_KEYS)

Stage = Callable[..., Callable[..., Any]]


def plain_stage(fn: Callable[..., Any], **_: Any) -> Callable[..., Any]:
    """Run a stage as a plain function call (tests, and the Prefect-free path)."""
    return fn


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

    def add(self, read: int, loaded: int, duplicates: int, quarantined: int) -> None:
        self.read += read
        self.loaded += loaded
        self.duplicates += duplicates
        self.quarantined += quarantined


@dataclass
class RunResult:
    """The outcome of a run, for the CLI and the tests."""

    run_id: str
    status: str
    warehouse: Path
    as_of: datetime | None = None
    counts: dict[str, SourceCount] = field(default_factory=dict)
    timings: list[dict[str, Any]] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    message: str = ""

    @property
    def failed_checks(self) -> list[CheckResult]:
        """The checks that failed."""
        return [c for c in self.checks if not c.success]


@dataclass
class Loaded:
    """What an extract stage did: the agents it knows of, and its counts. The rows themselves
    wait in the state database's `stage` schema for the load."""

    known_agents: pl.Series
    counts: dict[str, SourceCount]


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
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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
    staged = stage_fn(raw.lazy()).collect()
    valid, rejected = rules.split_by_rules(staged, table_rules)
    return valid, _quarantine_rows(rejected, table, location, agent, _db_payload(table))


def extract_database(settings: Settings, run_started_at: datetime, store: StateStore) -> Loaded:
    """Read every operational table, type it, split off bad rows, and stage the core rows
    and the rejected ones in the state database (`stage.*`) for the load."""
    con = extract.open_source(settings.db_url)
    counts: dict[str, SourceCount] = {}

    def account(source: str, read: int, valid: int, bad: pl.DataFrame) -> None:
        counts.setdefault(source, SourceCount(source)).add(read, valid, 0, bad.height)
        store.append_table("stage", "rejected", bad)

    try:
        raw_agents = extract.read_table(con, "agents")
        no_agents = rules.RuleContext(run_started_at, pl.Series(dtype=pl.String))
        valid, bad = _split_db(
            raw_agents,
            "agents",
            staging.stage_agents,
            rules.agents_rules(no_agents),
            _located("agents", "agent_id"),
            pl.col("agent_id"),
        )
        account("agents", raw_agents.height, valid.height, bad)
        agents = core.dim_agents(valid.lazy()).collect()
        store.append_table("stage", "dim_agents", agents)
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
        account("business_targets", raw_targets.height, valid.height, bad)
        store.append_table(
            "stage", "dim_business_targets", core.business_targets(valid.lazy()).collect()
        )

        store.append_table("stage", "fct_task_runs", core.empty("fct_task_runs").collect())
        for raw in extract.iter_table(con, "agent_performance", SOURCE_BATCH_ROWS):
            valid, bad = _split_db(
                raw,
                "agent_performance",
                staging.stage_tasks,
                rules.task_rules(ctx),
                _located("agent_performance", "id"),
                pl.col("agent_id"),
            )
            account("agent_performance", raw.height, valid.height, bad)
            store.append_table(
                "stage", "fct_task_runs", core.task_facts(valid.lazy(), agents.lazy()).collect()
            )

        raw_workflows = extract.read_table(con, "workflow_executions")
        valid, bad = _split_db(
            raw_workflows,
            "workflow_executions",
            staging.stage_workflows,
            rules.workflow_rules(ctx),
            _located("workflow_executions", "workflow_id"),
            pl.col("initiator_agent_id"),
        )
        account("workflow_executions", raw_workflows.height, valid.height, bad)
        store.append_table(
            "stage",
            "fct_workflow_runs",
            core.latest_versions(core.workflow_facts(valid.lazy()), "workflow_id").collect(),
        )

        store.append_table("stage", "fct_messages", core.empty("fct_messages").collect())
        sender_unknown = ~pl.col("sender_agent_id").is_in(ctx.known_agents.implode())
        for raw in extract.iter_table(con, "agent_communications", SOURCE_BATCH_ROWS):
            valid, bad = _split_db(
                raw,
                "agent_communications",
                staging.stage_messages,
                rules.message_rules(ctx),
                _located("agent_communications", "id"),
                pl.coalesce(
                    pl.when(sender_unknown).then(pl.col("sender_agent_id")),
                    pl.col("receiver_agent_id"),
                ),
            )
            account("agent_communications", raw.height, valid.height, bad)
            # message_id is unique at the source: every row is the message's latest version.
            store.append_table("stage", "fct_messages", core.message_facts(valid.lazy()).collect())

        raw_metrics = extract.read_table(con, "business_metrics")
        valid, bad = _split_db(
            raw_metrics,
            "business_metrics",
            staging.stage_business_metrics,
            rules.business_metric_rules(ctx),
            _located("business_metrics", "id"),
            pl.lit(None),
        )
        account("business_metrics", raw_metrics.height, valid.height, bad)
        versions = core.business_metric_versions(valid.lazy()).collect()
        store.append_table("stage", "fct_business_metric_versions", versions)
        store.append_table(
            "stage", "fct_business_metrics", core.resolve_restatements(versions.lazy()).collect()
        )
    finally:
        con.close()
    return Loaded(known_agents=agents["agent_id"], counts=counts)


def extract_logs(
    settings: Settings, known_agents: pl.Series, run_started_at: datetime, store: StateStore
) -> Loaded:
    """Read every log file, decode, type, split off bad lines, and stage the valid events
    (with their read order) and the rejected lines in the state database."""
    files = extract.list_log_files(settings.logs_dir)
    ctx = rules.RuleContext(run_started_at, known_agents)
    event_rules = rules.log_event_rules(ctx)
    count = SourceCount("logs")
    for table in EVENT_CORE_TABLES:
        store.append_table(
            "stage",
            table,
            core.empty(table)
            .with_columns(pl.lit(None, dtype=pl.Int64).alias("read_order"))
            .collect(),
        )
    for lines in extract.read_log_lines(settings.logs_dir, files):
        staged = staging.stage_log_events(
            lines.lazy().with_row_index("read_order", offset=count.read)
        ).collect()
        valid, bad = rules.split_by_rules(staged, event_rules)
        for table, frame in core.event_facts(valid.lazy()).items():
            store.append_table("stage", table, frame.collect())
        if bad.height:
            bad = extract.raw_log_lines(settings.logs_dir, bad.sort("file", "line_no"))
            store.append_table(
                "stage",
                "rejected",
                _quarantine_rows(
                    bad,
                    "logs",
                    pl.format("{}:{}", "file", "line_no"),
                    pl.col("agent_id"),
                    pl.col("raw_payload"),
                ),
            )
        count.add(lines.height, lines.height - bad.height, 0, bad.height)
    return Loaded(known_agents=known_agents, counts={"logs": count})


EVENT_CORE_TABLES = [
    "fct_heartbeats",
    "fct_resource_samples",
    "fct_agent_errors",
    "fct_other_events",
]
STAGED_CORE_TABLES = [
    "dim_agents",
    "dim_business_targets",
    "fct_task_runs",
    "fct_workflow_runs",
    "fct_messages",
    "fct_business_metric_versions",
    "fct_business_metrics",
]


# ---------------------------------------------------------------------------------------------
# Load


def load_core(store: StateStore, run_id: str, run_started_at: datetime) -> tuple[int, int]:
    """Replace the core tables and the quarantine with this (full) run's staged rows, in one
    transaction. Returns (rows loaded, duplicate log events dropped)."""
    with store.transaction():
        rows = 0
        for table in STAGED_CORE_TABLES:
            store.con.execute(f"CREATE OR REPLACE TABLE core.{table} AS FROM stage.{table}")
            rows += store.scalar(f"SELECT count(*) FROM core.{table}")
        staged_events = 0
        for table in EVENT_CORE_TABLES:
            staged_events += store.scalar(f"SELECT count(*) FROM stage.{table}")
            loaded = store.load_first_copies("stage", table, "core", table, core.EVENT_KEY)
            rows += loaded
        duplicates = staged_events - sum(
            store.scalar(f"SELECT count(*) FROM core.{t}") for t in EVENT_CORE_TABLES
        )
        store.clear_rejected()
        store.add_rejected(run_id, run_started_at, store.query("FROM stage.rejected"))
    return rows, duplicates


# ---------------------------------------------------------------------------------------------
# Marts


def _latest(store: StateStore, sql: str) -> datetime | None:
    value = store.scalar(sql)
    return value if isinstance(value, datetime) else None


def warehouse_as_of(store: StateStore) -> datetime | None:
    """as_of over everything in core (the rule itself lives in transforms.marts.as_of)."""
    beats = pl.LazyFrame(
        {"ts": [_latest(store, "SELECT max(ts) FROM core.fct_heartbeats")]},
        schema={"ts": pl.Datetime("us")},
    )
    maxima = [
        _latest(store, f"SELECT max({column}) FROM core.{table}")
        for table, column in [
            ("fct_task_runs", "completed_at"),
            ("fct_workflow_runs", "started_at"),
            ("fct_workflow_runs", "completed_at"),
            ("fct_messages", "sent_at"),
            ("fct_messages", "received_at"),
            ("fct_messages", "responded_at"),
            ("fct_resource_samples", "ts"),
            ("fct_agent_errors", "ts"),
        ]
    ]
    activity = pl.LazyFrame({"ts": maxima}, schema={"ts": pl.Datetime("us")})
    return marts.as_of(beats, activity).collect().item()


def _activity_bounds(store: StateStore) -> tuple[date | None, date | None]:
    parts = [
        ("dim_agents", "deployed_at"),
        ("fct_task_runs", "completed_at"),
        ("fct_workflow_runs", "started_at"),
        ("fct_messages", "sent_at"),
        ("fct_messages", "received_at"),
        ("fct_heartbeats", "ts"),
        ("fct_resource_samples", "ts"),
        ("fct_agent_errors", "ts"),
    ]
    union = " UNION ALL ".join(
        f"SELECT min({c}) AS lo, max({c}) AS hi FROM core.{t}" for t, c in parts
    )
    lo, hi = store.con.execute(f"SELECT min(lo)::DATE, max(hi)::DATE FROM ({union})").fetchone()
    return lo, hi


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
    """The core facts a partition covering dates [start, end) needs."""
    lo = datetime.combine(start, datetime.min.time())
    hi = datetime.combine(end, datetime.min.time())
    beat_lo = lo - timedelta(seconds=interval_s)

    def q(sql: str, params: list) -> pl.LazyFrame:
        return store.query(sql, params).lazy()

    return marts.Facts(
        agents=q("SELECT * FROM core.dim_agents", []),
        tasks=q(
            "SELECT * FROM core.fct_task_runs WHERE completed_at >= ? AND completed_at < ?",
            [lo, hi],
        ),
        messages=q(
            "SELECT * FROM core.fct_messages WHERE (sent_at >= ? AND sent_at < ?) "
            "OR (received_at >= ? AND received_at < ?)",
            [lo, hi, lo, hi],
        ),
        workflows=q("SELECT * FROM core.fct_workflow_runs", []),
        heartbeats=q("SELECT * FROM core.fct_heartbeats WHERE ts >= ? AND ts < ?", [beat_lo, hi]),
        resources=q("SELECT * FROM core.fct_resource_samples WHERE ts >= ? AND ts < ?", [lo, hi]),
        errors=q("SELECT * FROM core.fct_agent_errors WHERE ts >= ? AND ts < ?", [lo, hi]),
    )


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


def build_marts(
    store: StateStore, settings: Settings
) -> tuple[dict[str, pl.DataFrame], datetime | None]:
    """Every mart over everything in core, one month partition at a time."""
    params = settings.kpi
    as_of_ts = warehouse_as_of(store)
    first, last = _activity_bounds(store)
    if as_of_ts is None or first is None or last is None:
        return empty_marts(), as_of_ts
    last = max(last, as_of_ts.date())
    business = store.query("SELECT * FROM core.fct_business_metrics").lazy()
    parts: dict[str, list[pl.DataFrame]] = {}
    for requested in partitions(periods_overlapping(first, last)):
        start = requested["period_start"].min()
        end = requested["period_end"].max()
        facts = load_facts(store, start, end, params.heartbeat_interval_s)
        for name, frame in marts.period_marts(
            facts, business, requested.lazy(), as_of_ts, params
        ).items():
            parts.setdefault(name, []).append(frame)
    out = {name: pl.concat(frames).sort(MART_KEYS[name]) for name, frames in parts.items()}
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
        heartbeats=store.query(
            "SELECT * FROM core.fct_heartbeats "
            "QUALIFY row_number() OVER (PARTITION BY agent_id ORDER BY ts DESC) = 1"
        ).lazy(),
        resources=core.empty("fct_resource_samples"),
        errors=core.empty("fct_agent_errors"),
    )
    out["agent_health"] = marts.agent_health(health_facts, as_of_ts, params).collect()
    out["alerts"] = marts.alerts(agent_days, params).collect()
    return {name: out[name] for name in MART_NAMES}, as_of_ts


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
        total.add(c.read, c.loaded, c.duplicates, c.quarantined)
    rows = [*counts, total]
    return pl.DataFrame(
        {
            "run_id": [result.run_id] * len(rows),
            "source": [c.source for c in rows],
            "rows_read": [c.read for c in rows],
            "rows_loaded": [c.loaded for c in rows],
            "rows_duplicate": [c.duplicates for c in rows],
            "rows_quarantined": [c.quarantined for c in rows],
            "run_mode": [mode] * len(rows),
            "run_status": [result.status] * len(rows),
            "run_started_at": [started] * len(rows),
            "run_finished_at": [finished] * len(rows),
            "as_of": [result.as_of] * len(rows),
            "message": [result.message] * len(rows),
        },
        schema_overrides={"as_of": pl.Datetime("us"), "run_finished_at": pl.Datetime("us")},
    )


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def run_pipeline(
    settings: Settings,
    *,
    stage: Stage = plain_stage,
    run_started_at: datetime | None = None,
) -> RunResult:
    """One full run. Raises PipelineError (with a one-line reason) when the run fails; the
    previously published marts then stay as they were."""
    started = run_started_at or _utc_now()
    run_id = started.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    result = RunResult(run_id=run_id, status="running", warehouse=settings.warehouse)
    clock = StageClock(run_id)
    store = StateStore(state_path_for(settings.warehouse))
    recorded = 0  # how many stage timings are already recorded (with the run's record)
    try:
        store.reset_stage()
        with clock.stage("extract_database") as info:
            retry = {"retries": settings.extract_retries, "retry_delay_s": settings.retry_delay_s}
            db = stage(extract_database, **retry)(settings, started, store)
            info["rows"] = sum(c.read for c in db.counts.values())
        with clock.stage("extract_logs") as info:
            logs = stage(extract_logs, **retry)(settings, db.known_agents, started, store)
            info["rows"] = logs.counts["logs"].read
        result.counts = {**db.counts, **logs.counts}
        with clock.stage("load_core") as info:
            info["rows"], duplicates = stage(load_core)(store, run_id, started)
        result.counts["logs"].loaded -= duplicates
        result.counts["logs"].duplicates += duplicates
        store.reset_stage()
        with clock.stage("build_marts") as info:
            built, result.as_of = stage(build_marts)(store, settings)
            info["rows"] = sum(frame.height for frame in built.values())
        with clock.stage("validate") as info:
            result.checks = stage(validate)(store, built)
            info["rows"] = len(result.checks)
        store.record_validation(check_results_frame(run_id, result.checks, _utc_now()))
        failed = result.failed_checks
        if failed:
            names = ", ".join(sorted({f"{c.table}: {c.expectation}({c.column})" for c in failed}))
            raise ValidationFailed(
                f"{len(failed)} mart check(s) failed, nothing published: {names}"
            )
        with clock.stage("publish"):
            store.replace_marts(built)
            result.status = "succeeded"
            result.message = "published"
            # The run's own record goes into the published file with the marts.
            store.record_run(_run_rows(result, "full", started, _utc_now()))
            store.record_timings(pl.DataFrame(clock.rows, schema=_TIMING_SCHEMA))
            recorded = len(clock.rows)
            stage(publish)(store, settings.warehouse, run_id)
    except (PipelineError, extract.SourceError) as error:
        result.status = "failed"
        result.message = str(error)
    except Exception as error:
        result.status = "failed"
        result.message = f"{type(error).__name__}: {error}".splitlines()[0]
        raise
    finally:
        result.timings = clock.rows
        store.record_timings(pl.DataFrame(clock.rows[recorded:], schema=_TIMING_SCHEMA))
        if not recorded or result.status == "failed":
            store.con.execute("DELETE FROM ops.pipeline_runs WHERE run_id = ?", [run_id])
            store.record_run(_run_rows(result, "full", started, _utc_now()))
        store.close()
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


def validate(store: StateStore, built: dict[str, pl.DataFrame]) -> list[CheckResult]:
    """Great Expectations over the staged input (core) and over every mart.

    A core table larger than STAGED_SAMPLE_ROWS is checked by GX on a repeatable sample of
    that many rows (GX costs seconds per million rows); its key is checked for uniqueness on
    every row, in DuckDB.
    """
    staged: dict[str, pl.DataFrame] = {}
    exact: list[CheckResult] = []
    for table in core.CORE_SCHEMAS:
        if not store.has_table("core", table):
            continue
        rows = store.scalar(f"SELECT count(*) FROM core.{table}")
        if rows <= STAGED_SAMPLE_ROWS:
            staged[table] = store.query(f"SELECT * FROM core.{table}")
            continue
        staged[table] = store.query(
            f"SELECT * FROM core.{table} "
            f"USING SAMPLE reservoir({STAGED_SAMPLE_ROWS} ROWS) REPEATABLE (7)"
        )
        keys = STAGED_KEYS.get(table)
        if keys:
            columns = ", ".join(keys)
            repeated = store.scalar(
                f"SELECT count(*) - count(DISTINCT ({columns})) FROM core.{table}"
            )
            exact.append(
                CheckResult(
                    suite="staged",
                    table=f"core.{table}",
                    expectation="expect_compound_columns_to_be_unique (exact, DuckDB)",
                    column="+".join(keys),
                    success=repeated == 0,
                    observed=f"{repeated} repeated keys in {rows} rows",
                    details=json.dumps({"column_list": list(keys), "rows": rows}),
                )
            )
    return validate_staged(staged) + exact + validate_marts(built)
