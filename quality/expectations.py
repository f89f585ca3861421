"""Great Expectations suites for the marts and the staged core tables, and how they run.

`validate_marts` checks the published marts (`contract/kpis.md`): keys, value ranges, the
relations between a row's columns and the relations between marts (a department's tasks are
the sum of its agents'). `validate_staged` checks the core tables (`docs/design.md`) against
the row rules of `contract/sources.md`. Both return one `CheckResult` per expectation.

How the checks run, and why:
* GX has no Polars engine and its SQL engine fails on DuckDB, so every table is handed to GX
  as a pandas frame holding only the columns its expectations read.
* Where GX has no expectation for a relation (a sum, an implication, a match with another
  mart), the relation is computed in Polars first, as a helper column named after what it
  holds (`tasks_succeeded_plus_tasks_failed`, `department_row_exists`), and GX checks that.
* One ephemeral context (no `gx/` folder, analytics and progress bars off) is built once per
  process; each table is one batch validated by one suite, first with result format
  BOOLEAN_ONLY (a verdict alone), then with SUMMARY for the expectations that failed (its
  row indices let `observed` quote the failing rows' keys).
* A float "a >= b" (a mean against the maximum) allows one part in 1e9: DuckDB's mean of
  0.1, 0.1, 0.1 is 0.10000000000000002, above their maximum.
* Speed: GX spends milliseconds of Python per expectation whatever the size (half as many
  since two of its pure computations are not repeated, `_gx_without_repeated_work`), then the
  pandas work, which grows with the rows (text columns go over as categoricals to keep it
  down). For year-sized staged tables, `validate_staged(max_rows=...)` has GX check a
  sample while keys are still checked exactly, in Polars, on every row.
"""

from __future__ import annotations

import os

# GX reads this when it is imported: it must never try to reach the network.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

import json
import math
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
import polars as pl
from great_expectations.core.batch_definition import BatchDefinition
from great_expectations.core.expectation_validation_result import (
    ExpectationValidationResult,
)
from great_expectations.core.id_dict import IDDict
from great_expectations.data_context import EphemeralDataContext
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.datasource.fluent.interfaces import Batch
from great_expectations.execution_engine import pandas_execution_engine
from great_expectations.expectations.expectation import Expectation
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

MARTS_SUITE = "marts"
STAGED_SUITE = "staged"

HEALTH_STATUSES = ("green", "yellow", "red", "unknown")
PERIODS = ("day", "week", "month")
ALERT_LEVELS = ("critical", "warning")
ALERT_METRICS = ("success_rate", "response_time_avg_s")

PERIOD_KEY = ("period", "period_start")
MART_KEYS: dict[str, tuple[str, ...]] = {
    "agent_kpis": (*PERIOD_KEY, "agent_id"),
    "department_kpis": (*PERIOD_KEY, "department"),
    "system_kpis": PERIOD_KEY,
    "workflow_kpis": (*PERIOD_KEY, "workflow_name"),
    "business_value": ("date",),
    "agent_health": ("agent_id",),
    "alerts": ("period_start", "agent_id", "metric"),
}
STAGED_KEYS: dict[str, tuple[str, ...]] = {
    "dim_agents": ("agent_id",),
    "fct_task_runs": ("task_id",),
    "fct_workflow_runs": ("workflow_id",),
    "fct_messages": ("message_id",),
    "fct_business_metrics": ("metric_date", "department", "metric_name"),
    "dim_business_targets": ("metric_name", "period_start", "period_end"),
    "fct_heartbeats": ("agent_id", "ts"),
    "fct_resource_samples": ("agent_id", "ts"),
    "fct_agent_errors": ("agent_id", "ts"),
}
# dim_business_targets has no key in design.md (one row per source row): these columns are
# only required, not unique.
_UNKEYED_STAGED = frozenset({"dim_business_targets"})

# Fractions 0..1 (contract: "Rates are fractions 0-1").
RATE_COLUMNS = (
    "uptime_pct",
    "success_rate",
    "error_rate",
    "message_delivery_rate",
    "collaboration_efficiency",
    "workflow_completion_rate",
    "cross_department_completion_rate",
    "error_recovery_rate",
    "communication_success_rate",
    "deployment_success_rate",
    "completion_rate",
    "recovery_rate",
    "expected_progress_pct",
    "success_rate_24h",
)
# Counts: never negative, and never NULL ("counts over nothing are 0").
COUNT_COLUMNS = (
    "tasks_total",
    "tasks_succeeded",
    "tasks_failed",
    "messages_received",
    "messages_responded",
    "messages_sent",
    "errors_logged",
    "workflows_participated",
    "workflows_succeeded",
    "agents_total",
    "agents_active",
    "agents_green",
    "agents_yellow",
    "agents_red",
    "agents_registered",
    "agents_deployed",
    "agents_healthy",
    "workflows_started",
    "workflows_completed",
    "workflows_failed",
    "workflows_running",
    "multi_agent_workflows_succeeded",
    "messages_total",
    "completed",
    "failed",
    "running",
    "errors",
    "errors_recovered",
    "departments_involved",
)
# Sums that are never NULL ("sums over nothing are 0") and never negative.
NONNEGATIVE_SUM_COLUMNS = ("uptime_hours", "operating_cost_usd", "operating_cost_ytd_usd")
# Sums of business figures: never NULL, but their sign is the business's.
BUSINESS_SUM_COLUMNS = (
    "revenue_usd",
    "lead_pipeline_usd",
    "cost_savings_usd",
    "leads_generated",
    "conversions",
    "insights_generated",
    "content_published",
    "revenue_ytd_usd",
    "lead_pipeline_ytd_usd",
    "cost_savings_ytd_usd",
)
# Durations, resource figures, queues, per-unit costs and progress: NULL allowed, never < 0.
NONNEGATIVE_COLUMNS = (
    "exec_time_avg_s",
    "exec_time_p50_s",
    "exec_time_p95_s",
    "exec_time_max_s",
    "response_time_avg_s",
    "response_time_p95_s",
    "response_time_avg_24h_s",
    "tasks_per_uptime_hour",
    "cpu_avg_pct",
    "cpu_max_pct",
    "memory_avg_mb",
    "memory_max_mb",
    "cost_per_task_usd",
    "duration_avg_s",
    "duration_p95_s",
    "avg_task_queue",
    "avg_message_queue",
    "seconds_since_heartbeat",
    "task_queue",
    "message_queue",
)
# Business ratios are not checked for range: no source rule ties conversions to leads or
# correct to total predictions, and revenue can be negative (refunds). A mart check that
# fails stops publication, so it holds only what the computation itself guarantees.
RANK_COLUMNS = ("rank_overall", "rank_in_department", "rank_success")
FLAG_COLUMNS = ("is_complete", "is_healthy", "is_cross_department")

# Relative slack for "a >= b" between floats: a mean can exceed the maximum by one ulp
# (mean(0.1, 0.1, 0.1) > 0.1), which is rounding, not a broken figure.
FLOAT_RELATIVE_TOLERANCE = 1e-9
# Absolute slack (USD) for a money figure against the sum of its parts.
MONEY_TOLERANCE_USD = 1e-6
# How many failing rows `observed` quotes.
_EXAMPLES = 3
_OBSERVED_MAX_CHARS = 400


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one expectation on one table.

    `expectation` is the GX expectation type; two more values say a check could not be
    built at all (and count as failed): `helper_column_error` (a relation's helper column
    could not be computed, e.g. a date column of the wrong type) and `cross_table_join_error`
    (two marts could not be joined on their keys). `observed` reads like
    "1 of 3 rows unexpected (33.3%); e.g. [period=day, period_start=2026-01-05, agent_id=a2]
    1.2": the failing rows' keys come from GX's row indices. A uniqueness check that ran in
    Polars because the table was sampled (`validate_staged(max_rows=...)`) says
    "(exact, Polars)"; GX checks on a sample end with "[GX on 1 row in k: n of N rows]".
    """

    suite: str  # "marts" or "staged"
    table: str  # e.g. "marts.agent_kpis", "core.fct_task_runs"
    expectation: str  # GX expectation type, e.g. "expect_column_values_to_be_between"
    column: str | None  # column(s) it is about, e.g. "success_rate", "p50<=p95"
    success: bool
    observed: (
        str  # failed: unexpected count / percent / examples, or the observed value; passed: "ok"
    )
    details: str  # the expectation's kwargs, JSON text


# --------------------------------------------------------------------------------------
# Running GX


@cache
def _context() -> EphemeralDataContext:
    """The process's one GX context: in memory, no analytics, no progress bars."""
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    context = gx.get_context(project_config=config, mode="ephemeral")
    # An ephemeral context "saves" its whole configuration after every new asset and batch
    # definition by rendering it as YAML into an in-memory store that nothing reads back:
    # 40 renderings of a growing text per process, 0.3 s of a run. The configuration itself
    # (`context.config`) is updated either way.
    context._save_project_config = lambda: None  # type: ignore[method-assign]
    context.data_sources.add_pandas(name=_DATASOURCE)
    return context


_DATASOURCE = "agentkpi"
# GX contexts, stores and execution engines are not thread-safe; Prefect may run tasks in
# threads.
_GX_LOCK = threading.Lock()


def _batch_definition(asset_name: str) -> BatchDefinition:
    """The whole-dataframe batch definition of one table (created on first use)."""
    datasource = _context().data_sources.get(_DATASOURCE)
    try:
        asset = datasource.get_asset(asset_name)
    except LookupError:
        asset = datasource.add_dataframe_asset(name=asset_name)
    try:
        return asset.get_batch_definition("whole")
    except (KeyError, LookupError):
        return asset.add_batch_definition_whole_dataframe("whole")


def _run_suite(
    asset_name: str, frame: pl.DataFrame, expectations: Sequence[Expectation]
) -> list[ExpectationValidationResult]:
    """Validate `frame` with all `expectations` in one batch.

    GX spends most of its time building each expectation's metrics, and a detailed result
    (unexpected counts, examples, observed values) needs several more metrics than a yes or
    no. So every expectation runs first for its verdict alone; only those that fail run
    again for their details. Passing checks therefore carry no observed value."""
    if not expectations:
        return []
    columns = sorted({c for e in expectations for c in _columns_of(e) if c in frame.columns})
    data = _to_pandas(frame.select(columns), keep_strings=_columns_kept_as_text(expectations))
    with _GX_LOCK, _gx_without_repeated_work():
        engine = _context().data_sources.get(_DATASOURCE).get_execution_engine()
        try:
            batch = _batch_definition(asset_name).get_batch(batch_parameters={"dataframe": data})
            verdicts = _validate(batch, expectations, "BOOLEAN_ONLY")
            failed = [r.expectation_config.to_domain_obj() for r in verdicts if not r.success]
            details = _validate(batch, failed, "SUMMARY") if failed else []
            return [r for r in verdicts if r.success] + details
        finally:
            # The engine would keep the last batch (the whole pandas frame) for the life of
            # the process.
            engine.batch_manager.reset_batch_cache()


@contextmanager
def _gx_without_repeated_work() -> Iterator[None]:
    """While GX validates, two of its pure computations are done once per distinct input and
    then reused; what it returns is unchanged (`test_gx_without_repeated_work_changes_no_result`
    compares results with and without). Held under `_GX_LOCK`: both are the classes', for
    every thread. Together they are half of the validation's time (GX 1.24):

    * An expectation's `configuration` (a pydantic `dict()` and a regular expression on its
      class name) is rebuilt each time GX reads one of its arguments: about 22,000 times for
      the marts' 258 expectations. Nothing changes an expectation while it is validated, so
      each one's is built once.
    * Each metric's id hashes its arguments as JSON after walking them for numpy types
      (`IDDict.to_id`): 10,000 times for about 200 distinct arguments. Arguments that are
      plain text, numbers and NULLs get their id from the first time they were hashed.
    * The expectation that a configuration describes (`ExpectationConfiguration.to_domain_obj`,
      a pydantic model validated field by field) is rebuilt each time GX looks up a metric's
      arguments: eight times per expectation. It is built again only when the configuration's
      type, arguments, meta, id or severity changed since (GX adds `batch_id` to a copy
      before it asks).

    And one is not done at all: the MD5 of every batch's data (`pandas_data_fingerprint`,
    0.4 s of an hourly run), which GX only records among the batch's markers, metadata that no
    expectation and no CheckResult reads. GX skips it for frames of HASH_THRESHOLD bytes and
    more; here, for all."""
    built = Expectation.__dict__.get("configuration")
    hashed = IDDict.__dict__.get("to_id")
    described = ExpectationConfiguration.__dict__.get("to_domain_obj")
    threshold = getattr(pandas_execution_engine, "HASH_THRESHOLD", None)
    if (
        not isinstance(built, property)
        or built.fget is None
        or hashed is None
        or described is None
        or threshold is None
    ):
        yield  # another GX: leave it be
        return
    build = built.fget
    seen: dict[int, tuple[Expectation, Any]] = {}
    ids: dict[tuple[tuple[str, type, Any], ...], Any] = {}
    domain_objects: dict[int, tuple[ExpectationConfiguration, tuple[Any, ...], Expectation]] = {}

    def configuration(self: Expectation) -> Any:
        kept = seen.get(id(self))
        if kept is None or kept[0] is not self:
            kept = seen[id(self)] = (self, build(self))
        return kept[1]

    def to_id(self: IDDict, id_keys: Any = None, id_ignore_keys: Any = None) -> Any:
        if id_keys is not None or id_ignore_keys is not None:
            return hashed(self, id_keys, id_ignore_keys)
        if not all(isinstance(value, _PLAIN) for value in self.values()):
            return hashed(self)
        # The type too: 1, 1.0 and True are equal keys of a dict, not equal JSON.
        key = tuple(sorted((name, type(value), value) for name, value in self.items()))
        if key not in ids:
            ids[key] = hashed(self)
        return ids[key]

    def to_domain_obj(self: ExpectationConfiguration) -> Expectation:
        state = (self.type, dict(self.kwargs), dict(self.meta or {}), self.id, self.severity)
        kept = domain_objects.get(id(self))
        if kept is None or kept[0] is not self or kept[1] != state:
            kept = domain_objects[id(self)] = (self, state, described(self))
        return kept[2]

    Expectation.configuration = property(configuration, doc=built.__doc__)  # type: ignore[method-assign,assignment]
    IDDict.to_id = to_id  # type: ignore[method-assign]
    ExpectationConfiguration.to_domain_obj = to_domain_obj  # type: ignore[method-assign]
    pandas_execution_engine.HASH_THRESHOLD = 0  # no frame is smaller than 0 bytes
    try:
        yield
    finally:
        Expectation.configuration = built  # type: ignore[method-assign]
        IDDict.to_id = hashed  # type: ignore[method-assign]
        ExpectationConfiguration.to_domain_obj = described  # type: ignore[method-assign]
        pandas_execution_engine.HASH_THRESHOLD = threshold


_PLAIN = (str, int, float, bool, type(None))


def _validate(
    batch: Batch, expectations: Sequence[Expectation], result_format: str
) -> list[ExpectationValidationResult]:
    suite = gx.ExpectationSuite(name=f"checks-{uuid.uuid4().hex}", expectations=list(expectations))
    return list(batch.validate(suite, result_format=result_format).results)


def _columns_kept_as_text(expectations: Sequence[Expectation]) -> set[str]:
    """Columns GX must see as text: unique on their own, or compared in order in a pair."""
    kept = set()
    for expectation in expectations:
        kwargs = expectation.configuration.kwargs
        if expectation.configuration.type == "expect_column_values_to_be_unique":
            kept.add(kwargs["column"])
        kept.update(kwargs[k] for k in ("column_A", "column_B") if kwargs.get(k))
    return kept


def _to_pandas(frame: pl.DataFrame, keep_strings: set[str]) -> pd.DataFrame:
    """The frame for GX's pandas engine, text columns as categoricals.

    Ids and statuses repeat: as categoricals, pandas hashes, compares and de-duplicates them
    on integer codes instead of Arrow strings, which matters at millions of rows. Columns
    unique row by row (a category per row would only cost) and columns compared in order
    (unordered categoricals cannot be) stay text.
    """
    casts = [
        pl.col(name).cast(pl.Categorical)
        for name, dtype in frame.schema.items()
        if dtype == pl.String and name not in keep_strings
    ]
    return frame.with_columns(casts).to_pandas()


def _columns_of(expectation: Expectation) -> list[str]:
    """The columns an expectation reads."""
    kwargs = expectation.configuration.kwargs
    columns = [kwargs[k] for k in ("column", "column_A", "column_B") if kwargs.get(k)]
    return columns + list(kwargs.get("column_list") or [])


# --------------------------------------------------------------------------------------
# Describing the results


def _to_check_result(
    suite: str,
    table: str,
    result: ExpectationValidationResult,
    rows: pl.DataFrame,
    keys: Sequence[str],
) -> CheckResult:
    """One GX result as a CheckResult, quoting the keys of a few failing rows."""
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    return CheckResult(
        suite=suite,
        table=table,
        expectation=config.type,
        column=(config.meta or {}).get("column"),
        success=bool(result.success),
        observed=_observed(result, rows, keys),
        details=json.dumps(kwargs, sort_keys=True, default=str),
    )


def _exception_message(result: ExpectationValidationResult) -> str | None:
    """The message of an exception GX caught while validating, if it caught one."""
    info = result.exception_info or {}
    candidates = [info, *(v for v in info.values() if isinstance(v, dict))]
    for candidate in candidates:
        if candidate.get("raised_exception"):
            message = str(candidate.get("exception_message") or "exception")
            return message.splitlines()[0] if message else "exception"
    return None


def _observed(result: ExpectationValidationResult, rows: pl.DataFrame, keys: Sequence[str]) -> str:
    """Short text of what GX saw: unexpected count and percent, and a few examples."""
    error = _exception_message(result)
    if error is not None:
        return f"error: {error}"[:_OBSERVED_MAX_CHARS]
    summary: dict[str, Any] = result.result or {}
    if "unexpected_count" not in summary:
        if "observed_value" in summary:
            return f"observed {summary['observed_value']}"[:_OBSERVED_MAX_CHARS]
        return "ok" if result.success else "failed"
    count = summary.get("unexpected_count") or 0
    total = summary.get("element_count") or 0
    percent = summary.get("unexpected_percent")
    text = f"{count} of {total} rows unexpected"
    if percent is not None:
        text += f" ({percent:.3g}%)"
    if count:
        text += "; e.g. " + "; ".join(_examples(summary, rows, keys))
    return text[:_OBSERVED_MAX_CHARS]


def _examples(summary: Mapping[str, Any], rows: pl.DataFrame, keys: Sequence[str]) -> list[str]:
    """A few failing values, each with the key of its row where GX says which row it is."""
    values = list(summary.get("partial_unexpected_list") or [])[:_EXAMPLES]
    indices = list(summary.get("partial_unexpected_index_list") or [])[:_EXAMPLES]
    present_keys = [k for k in keys if k in rows.columns]
    examples = []
    for position, value in enumerate(values):
        index = indices[position] if position < len(indices) else None
        if isinstance(index, int) and 0 <= index < rows.height and present_keys:
            key = ", ".join(f"{k}={rows[k][index]}" for k in present_keys)
            # A compound-uniqueness value is the key itself: quote it once.
            examples.append(f"[{key}]" if isinstance(value, dict) else f"[{key}] {_short(value)}")
        else:
            examples.append(_short(value))
    return examples


def _short(value: Any) -> str:
    """A value as short text (numpy scalars, tuples and dicts included)."""
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k}={_short(v)}" for k, v in value.items()) + ")"
    if isinstance(value, tuple):
        return "(" + ", ".join(_short(v) for v in value) + ")"
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


# --------------------------------------------------------------------------------------
# Building a table's suite


class _Suite:
    """The expectations of one table and the helper columns they read.

    Each method adds expectations only for the columns the frame has, so a frame carries the
    columns that matter and the suite follows; key columns are the exception (they must
    exist). Relations GX cannot express are computed in Polars as helper columns.
    """

    def __init__(self, frame: pl.DataFrame, keys: Sequence[str]) -> None:
        self.frame = frame
        self.keys = tuple(keys)
        self.expectations: list[Expectation] = []
        self.errors: list[tuple[str, str]] = []  # (label, message) of helpers that failed

    def has(self, *columns: str) -> bool:
        """Whether the frame (helpers included) has every column."""
        return all(c in self.frame.columns for c in columns)

    def is_float(self, column: str) -> bool:
        """Whether a column holds floating-point numbers."""
        return self.frame.schema[column].is_float()

    def _add(self, expectation: Expectation) -> None:
        self.expectations.append(expectation)

    def derive(self, name: str, expr: pl.Expr, label: str) -> bool:
        """Add helper column `name`; an expression that cannot run is recorded as a failure."""
        try:
            self.frame = self.frame.with_columns(expr.alias(name))
        except pl.exceptions.PolarsError as error:
            # Nothing to check in an empty frame whose columns have no usable type.
            if self.frame.height:
                self.errors.append((label, f"{type(error).__name__}: {error}".splitlines()[0]))
            return False
        return True

    def key(self, *, unique: bool = True) -> None:
        """Key columns exist and are not NULL, and (with `unique`) the key is unique."""
        # A present column needs no existence check (its other checks show it is there).
        for column in self.keys:
            if not self.has(column):
                self._add(gxe.ExpectColumnToExist(column=column, meta={"column": column}))
        self.not_null(*self.keys)
        if unique:
            self.unique(self.keys)

    def unique(self, columns: Sequence[str]) -> None:
        """The (compound) key is unique."""
        if not columns or not self.has(*columns):
            return
        label = ", ".join(columns)
        if len(columns) == 1:
            self._add(gxe.ExpectColumnValuesToBeUnique(column=columns[0], meta={"column": label}))
        else:
            self._add(
                gxe.ExpectCompoundColumnsToBeUnique(
                    column_list=list(columns), meta={"column": label}
                )
            )

    def not_null(self, *columns: str) -> None:
        """Columns are never NULL."""
        for column in columns:
            if self.has(column):
                self._add(gxe.ExpectColumnValuesToNotBeNull(column=column, meta={"column": column}))

    def between(
        self, columns: Sequence[str], min_value: float | None, max_value: float | None
    ) -> None:
        """Values within [min_value, max_value] (NULLs are not checked)."""
        for column in columns:
            if self.has(column):
                self._add(
                    gxe.ExpectColumnValuesToBeBetween(
                        column=column,
                        min_value=min_value,
                        max_value=max_value,
                        meta={"column": column},
                    )
                )

    def in_set(self, column: str, values: Sequence[Any], *, required: bool = True) -> None:
        """Values within `values`; `required` also forbids NULL."""
        if not self.has(column):
            return
        if required:
            self.not_null(column)
        self._add(
            gxe.ExpectColumnValuesToBeInSet(
                column=column, value_set=list(values), meta={"column": column}
            )
        )

    def at_least(
        self, greater: str, smaller: str, *, or_equal: bool = True, label: str | None = None
    ) -> None:
        """`greater >= smaller` (or `>`) row by row, rows with a NULL side skipped."""
        if not self.has(greater, smaller):
            return
        label = label or f"{smaller}{'<=' if or_equal else '<'}{greater}"
        column_a = greater
        if or_equal and self.is_float(greater):
            column_a = f"{greater}_plus_tolerance"
            slack = pl.max_horizontal(pl.lit(1.0), pl.col(greater).abs()) * FLOAT_RELATIVE_TOLERANCE
            if not self.derive(column_a, pl.col(greater) + slack, label):
                return
        self._add(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=column_a,
                column_B=smaller,
                or_equal=or_equal,
                ignore_row_if="either_value_is_missing",
                meta={"column": label},
            )
        )

    def equal(self, column_a: str, column_b: str, label: str) -> None:
        """`column_a == column_b` row by row, rows with a NULL side skipped."""
        if not self.has(column_a, column_b):
            return
        self._add(
            gxe.ExpectColumnPairValuesToBeEqual(
                column_A=column_a,
                column_B=column_b,
                ignore_row_if="either_value_is_missing",
                meta={"column": label},
            )
        )

    def holds(self, name: str, expr: pl.Expr, label: str, needs: Sequence[str]) -> None:
        """A relation computed in Polars as helper column `name` is true on every row.

        Rows where the relation evaluates to NULL (it does not apply) are not checked.
        """
        if not self.has(*needs) or not self.derive(name, expr, label):
            return
        self._add(
            gxe.ExpectColumnValuesToBeInSet(column=name, value_set=[True], meta={"column": label})
        )

    def sum_at_most(self, parts: Sequence[str], total: str) -> None:
        """`sum(parts) <= total`, via a helper column holding the sum."""
        if not self.has(*parts, total):
            return
        name = "_plus_".join(parts)
        label = f"{'+'.join(parts)}<={total}"
        if self.derive(name, pl.sum_horizontal(*parts), label):
            self.at_least(total, name, label=label)

    def sum_equals(self, parts: Sequence[str], total: str) -> None:
        """`sum(parts) == total`, via a helper column holding the sum."""
        if not self.has(*parts, total):
            return
        name = "_plus_".join(parts)
        label = f"{'+'.join(parts)}={total}"
        if self.derive(name, pl.sum_horizontal(*parts), label):
            self.equal(total, name, label)

    def within_money_tolerance(
        self, name: str, difference: pl.Expr, label: str, needs: Sequence[str]
    ) -> None:
        """A money difference (helper column `name`) is zero up to rounding."""
        if not self.has(*needs) or not self.derive(name, difference, label):
            return
        self._add(
            gxe.ExpectColumnValuesToBeBetween(
                column=name,
                min_value=-MONEY_TOLERANCE_USD,
                max_value=MONEY_TOLERANCE_USD,
                meta={"column": label},
            )
        )

    def run(self, suite: str, table: str, asset: str | None = None) -> list[CheckResult]:
        """Validate the frame (as GX data asset `asset`, default `table`) and describe
        every expectation's outcome."""
        results = [
            CheckResult(
                suite=suite,
                table=table,
                expectation="helper_column_error",
                column=label,
                success=False,
                observed=f"error: {message}"[:_OBSERVED_MAX_CHARS],
                details="{}",
            )
            for label, message in self.errors
        ]
        for result in _run_suite(asset or table, self.frame, self.expectations):
            results.append(_to_check_result(suite, table, result, self.frame, self.keys))
        return results


# --------------------------------------------------------------------------------------
# The marts


def _period_checks(s: _Suite) -> None:
    """period in its set, period_start aligned to it, period_end the first date after it."""
    s.in_set("period", PERIODS)
    s.at_least("period_end", "period_start", or_equal=False)
    start = pl.col("period_start")
    s.holds(
        "period_start_is_aligned",
        pl.when(pl.col("period") == "week")
        .then(start.dt.weekday() == 1)
        .when(pl.col("period") == "month")
        .then(start.dt.day() == 1)
        .when(pl.col("period") == "day")
        .then(pl.lit(True)),
        "period_start aligned to period",
        ["period", "period_start"],
    )
    s.holds(
        "period_end_is_next_period_start",
        pl.when(pl.col("period") == "day")
        .then(pl.col("period_end") == start.dt.offset_by("1d"))
        .when(pl.col("period") == "week")
        .then(pl.col("period_end") == start.dt.offset_by("1w"))
        .when(pl.col("period") == "month")
        .then(pl.col("period_end") == start.dt.offset_by("1mo")),
        "period_end = period_start + period",
        ["period", "period_start", "period_end"],
    )


def _common_mart_checks(s: _Suite) -> None:
    """The column rules every mart shares, applied to the columns a mart has."""
    s.key()
    s.between(RATE_COLUMNS, 0, 1)
    s.not_null(*COUNT_COLUMNS, *NONNEGATIVE_SUM_COLUMNS, *BUSINESS_SUM_COLUMNS)
    s.between(COUNT_COLUMNS, 0, None)
    s.between(NONNEGATIVE_SUM_COLUMNS, 0, None)
    s.between(NONNEGATIVE_COLUMNS, 0, None)
    s.not_null(*RANK_COLUMNS)
    s.between(RANK_COLUMNS, 1, None)
    for flag in FLAG_COLUMNS:
        s.in_set(flag, [True, False])
    s.in_set("health_status", HEALTH_STATUSES)


def _health_unknown_check(s: _Suite, success: str, response: str) -> None:
    """health_status is `unknown` exactly when neither indicator is known (any thresholds)."""
    s.holds(
        "health_unknown_iff_no_indicator",
        (pl.col("health_status") == "unknown")
        == (pl.col(success).is_null() & pl.col(response).is_null()),
        f"health_status=unknown iff {success} and {response} are NULL",
        ["health_status", success, response],
    )


def _task_checks(s: _Suite) -> None:
    """Task counts and their ratios agree (agent, department and system rows)."""
    s.sum_at_most(["tasks_succeeded", "tasks_failed"], "tasks_total")
    for rate in ("success_rate", "error_rate"):
        s.holds(
            f"{rate}_null_iff_no_tasks",
            pl.col(rate).is_null() == (pl.col("tasks_total") == 0),
            f"{rate} is NULL iff tasks_total=0",
            [rate, "tasks_total"],
        )
    s.at_least("exec_time_p95_s", "exec_time_p50_s")
    s.at_least("exec_time_max_s", "exec_time_p95_s")
    s.at_least("exec_time_max_s", "exec_time_avg_s")


def _agent_kpis(s: _Suite) -> None:
    _period_checks(s)
    _task_checks(s)
    s.at_least("messages_received", "messages_responded")
    s.at_least("workflows_participated", "workflows_succeeded")
    s.at_least("cpu_max_pct", "cpu_avg_pct")
    s.at_least("memory_max_mb", "memory_avg_mb")
    _health_unknown_check(s, "success_rate", "response_time_avg_s")


def _department_kpis(s: _Suite) -> None:
    _period_checks(s)
    _task_checks(s)
    _health_unknown_check(s, "success_rate", "response_time_avg_s")


def _system_kpis(s: _Suite) -> None:
    _period_checks(s)
    _task_checks(s)
    s.at_least("agents_registered", "agents_deployed")
    s.sum_equals(
        ["workflows_completed", "workflows_failed", "workflows_running"], "workflows_started"
    )


def _workflow_kpis(s: _Suite) -> None:
    _period_checks(s)
    s.not_null("runs")
    s.between(["runs"], 1, None)  # a row exists because a run started in the period
    s.sum_equals(["completed", "failed", "running"], "runs")
    s.at_least("errors", "errors_recovered")
    s.holds(
        "is_cross_department_iff_two_departments",
        pl.col("is_cross_department") == (pl.col("departments_involved") >= 2),
        "is_cross_department iff departments_involved>=2",
        ["is_cross_department", "departments_involved"],
    )


def _business_value(s: _Suite) -> None:
    s.not_null("revenue_target_usd", "lead_pipeline_target_usd", "expected_progress_pct")
    s.at_least("operating_cost_ytd_usd", "operating_cost_usd")
    if s.has("date"):
        # Every date from the first to the last: consecutive dates one day apart.
        s.frame = s.frame.sort("date", nulls_last=True)
    s.holds(
        "days_after_previous_date",
        (pl.col("date").cast(pl.Date) - pl.col("date").cast(pl.Date).shift(1)).dt.total_days() == 1,
        "date follows the previous date by 1 day",
        ["date"],
    )


def _agent_health(s: _Suite) -> None:
    s.in_set("last_status", ["ok", "degraded"], required=False)
    s.holds(
        "healthy_has_heartbeat",
        ~pl.col("is_healthy") | pl.col("last_heartbeat_at").is_not_null(),
        "is_healthy only with a heartbeat",
        ["is_healthy", "last_heartbeat_at"],
    )
    _health_unknown_check(s, "success_rate_24h", "response_time_avg_24h_s")


def _alerts(s: _Suite) -> None:
    s.in_set("level", ALERT_LEVELS)
    s.in_set("metric", ALERT_METRICS)
    s.not_null("value", "threshold")
    s.holds(
        "value_breaches_threshold",
        pl.when(pl.col("metric") == "success_rate")
        .then(pl.col("value") < pl.col("threshold"))
        .when(pl.col("metric") == "response_time_avg_s")
        .then(pl.col("value") > pl.col("threshold")),
        "value beyond threshold",
        ["metric", "value", "threshold"],
    )


_MART_RULES: dict[str, Callable[[_Suite], None]] = {
    "agent_kpis": _agent_kpis,
    "department_kpis": _department_kpis,
    "system_kpis": _system_kpis,
    "workflow_kpis": _workflow_kpis,
    "business_value": _business_value,
    "agent_health": _agent_health,
    "alerts": _alerts,
}


def _usable(frame: pl.DataFrame | None) -> bool:
    """A frame to validate: present and not a frame without columns (nothing loaded)."""
    return frame is not None and frame.width > 0


def _sums_by(
    frame: pl.DataFrame, keys: Sequence[str], columns: Sequence[str], prefix: str
) -> pl.DataFrame:
    """Per key: the sum of each column, the row count and the rows per health status."""
    aggregations = [
        pl.col(c).sum().alias(f"{prefix}_{c}_sum") for c in columns if c in frame.columns
    ]
    aggregations.append(pl.len().alias(f"{prefix}_rows"))
    if "health_status" in frame.columns:
        aggregations += [
            (pl.col("health_status") == status).sum().alias(f"{prefix}_rows_{status}")
            for status in ("green", "yellow", "red")
        ]
    return (
        frame.group_by(list(keys))
        .agg(aggregations)
        .with_columns(pl.lit(True).alias(f"{prefix}_row"))
    )


def _outer(left: pl.DataFrame, right: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    """Full join on `keys` (NULL keys match), counts of a missing side as 0."""
    joined = left.join(right, on=list(keys), how="full", coalesce=True, nulls_equal=True)
    fill = [
        pl.col(c).fill_null(0)
        for c, dtype in joined.schema.items()
        if c not in keys and dtype.is_integer()
    ]
    flags = [
        pl.col(c).fill_null(False) for c, dtype in joined.schema.items() if dtype == pl.Boolean
    ]
    return joined.with_columns(*fill, *flags)


def _restrict(frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """The frame's columns among `columns`, in the frame's order."""
    wanted = set(columns)
    return frame.select([c for c in frame.columns if c in wanted])


def _department_vs_agents(departments: pl.DataFrame, agents: pl.DataFrame) -> _Suite:
    """Department rows against the sums and counts of their agents' rows."""
    keys = MART_KEYS["department_kpis"]
    summed = ("tasks_total", "tasks_succeeded", "tasks_failed", "operating_cost_usd")
    counted = ("agents_green", "agents_yellow", "agents_red", "agents_active")
    own = _restrict(departments, [*keys, *summed, *counted]).with_columns(
        pl.lit(True).alias("department_row")
    )
    s = _Suite(_outer(own, _sums_by(agents, keys, summed, "agents"), keys), keys)
    s.holds(
        "department_row_exists",
        pl.col("department_row") | ~pl.col("agents_row"),
        "department row for every agent_kpis (period, period_start, department)",
        ["department_row", "agents_row"],
    )
    for column in ("tasks_total", "tasks_succeeded", "tasks_failed"):
        s.equal(column, f"agents_{column}_sum", f"{column}=sum(agent_kpis.{column})")
    for status in ("green", "yellow", "red"):
        s.equal(
            f"agents_{status}",
            f"agents_rows_{status}",
            f"agents_{status}=count(agent_kpis.health_status={status})",
        )
    s.at_least("agents_rows", "agents_active", label="agents_active<=count(agent_kpis rows)")
    s.within_money_tolerance(
        "operating_cost_usd_minus_sum_of_agents",
        pl.col("operating_cost_usd") - pl.col("agents_operating_cost_usd_sum").fill_null(0),
        "operating_cost_usd=sum(agent_kpis.operating_cost_usd)",
        ["operating_cost_usd", "agents_operating_cost_usd_sum"],
    )
    return s


def _system_vs_parts(
    system: pl.DataFrame,
    departments: pl.DataFrame | None,
    agents: pl.DataFrame | None,
    workflows: pl.DataFrame | None,
) -> _Suite:
    """System rows against the sums of department, agent and workflow rows."""
    keys = PERIOD_KEY
    statuses = ("completed", "failed", "running")
    frame = _restrict(
        system,
        [
            *keys,
            "tasks_total",
            "operating_cost_usd",
            "agents_healthy",
            "workflows_started",
            *(f"workflows_{status}" for status in statuses),
        ],
    ).with_columns(pl.lit(True).alias("system_row"))
    parts: list[str] = []
    for prefix, part, summed in (
        ("departments", departments, ("tasks_total", "operating_cost_usd")),
        ("agents", agents, ()),
        ("workflows", workflows, ("runs", *statuses)),
    ):
        if part is not None and _usable(part) and all(k in part.columns for k in keys):
            frame = _outer(frame, _sums_by(part, keys, summed, prefix), keys)
            parts.append(f"{prefix}_row")
    s = _Suite(frame, keys)
    if parts:
        s.holds(
            "system_row_exists",
            pl.col("system_row") | ~pl.any_horizontal(parts),
            "system row for every (period, period_start) of the other marts",
            ["system_row", *parts],
        )
    s.equal(
        "tasks_total", "departments_tasks_total_sum", "tasks_total=sum(department_kpis.tasks_total)"
    )
    s.within_money_tolerance(
        "operating_cost_usd_minus_sum_of_departments",
        pl.col("operating_cost_usd") - pl.col("departments_operating_cost_usd_sum").fill_null(0),
        "operating_cost_usd=sum(department_kpis.operating_cost_usd)",
        ["operating_cost_usd", "departments_operating_cost_usd_sum"],
    )
    s.at_least(
        "agents_rows_green",
        "agents_healthy",
        label="agents_healthy<=count(agent_kpis.health_status=green)",
    )
    s.equal("workflows_started", "workflows_runs_sum", "workflows_started=sum(workflow_kpis.runs)")
    for status in statuses:
        s.equal(
            f"workflows_{status}",
            f"workflows_{status}_sum",
            f"workflows_{status}=sum(workflow_kpis.{status})",
        )
    return s


def _alerts_vs_agents(alerts: pl.DataFrame, agents: pl.DataFrame) -> _Suite:
    """Each alert quotes the value of its agent's `day` row."""
    keys = ("period_start", "agent_id")
    day_rows = (
        _restrict(agents.filter(pl.col("period") == "day"), [*keys, *ALERT_METRICS])
        .unique(keys, keep="first")
        .with_columns(pl.lit(True).alias("agent_day_row"))
    )
    own = _restrict(alerts, [*keys, "metric", "value"])
    joined = own.join(day_rows, on=list(keys), how="left", nulls_equal=True, suffix="_agent")
    s = _Suite(joined.with_columns(pl.col("agent_day_row").fill_null(False)), MART_KEYS["alerts"])
    s.holds(
        "agent_day_row_exists",
        pl.col("agent_day_row"),
        "agent_kpis day row for every alert",
        ["agent_day_row"],
    )
    metric_value = pl.lit(None, dtype=pl.Float64)
    for metric in ALERT_METRICS:
        if metric in day_rows.columns:
            source = f"{metric}_agent" if metric in own.columns else metric
            metric_value = (
                pl.when(pl.col("metric") == metric).then(pl.col(source)).otherwise(metric_value)
            )
    if s.has("metric", "value") and s.derive("agent_kpis_value", metric_value, "value"):
        s.equal("value", "agent_kpis_value", "value=agent_kpis.<metric> of the day row")
    return s


def _cross_mart_checks(marts: Mapping[str, pl.DataFrame]) -> list[CheckResult]:
    """The relations between marts: totals that are sums of other marts' rows."""
    usable = {name: frame for name, frame in marts.items() if _usable(frame)}

    def has_keys(name: str, keys: Sequence[str]) -> bool:
        return name in usable and all(k in usable[name].columns for k in keys)

    checks: list[tuple[str, str, Callable[[], _Suite], list[str]]] = []
    if has_keys("department_kpis", MART_KEYS["department_kpis"]) and has_keys(
        "agent_kpis", MART_KEYS["department_kpis"]
    ):
        checks.append(
            (
                "marts.department_kpis",
                "agent_kpis",
                lambda: _department_vs_agents(usable["department_kpis"], usable["agent_kpis"]),
                ["department_kpis", "agent_kpis"],
            )
        )
    if has_keys("system_kpis", PERIOD_KEY):
        parts = {
            name: usable[name] if has_keys(name, PERIOD_KEY) else None
            for name in ("department_kpis", "agent_kpis", "workflow_kpis")
        }
        checks.append(
            (
                "marts.system_kpis",
                "department_kpis+agent_kpis+workflow_kpis",
                lambda: _system_vs_parts(
                    usable["system_kpis"],
                    parts["department_kpis"],
                    parts["agent_kpis"],
                    parts["workflow_kpis"],
                ),
                ["system_kpis", *(name for name, part in parts.items() if part is not None)],
            )
        )
    if has_keys("alerts", ("period_start", "agent_id", "metric")) and has_keys(
        "agent_kpis", ("period", "period_start", "agent_id")
    ):
        checks.append(
            (
                "marts.alerts",
                "agent_kpis",
                lambda: _alerts_vs_agents(usable["alerts"], usable["agent_kpis"]),
                ["alerts", "agent_kpis"],
            )
        )
    results: list[CheckResult] = []
    for table, against, build, inputs in checks:
        try:
            suite = build()
        except pl.exceptions.PolarsError as error:
            # Empty frames whose key columns have no usable type: nothing to compare.
            if all(usable[name].height == 0 for name in inputs):
                continue
            results.append(
                CheckResult(
                    suite=MARTS_SUITE,
                    table=table,
                    expectation="cross_table_join_error",
                    column=f"against {against}",
                    success=False,
                    observed=f"error: {type(error).__name__}: {error}".splitlines()[0][
                        :_OBSERVED_MAX_CHARS
                    ],
                    details="{}",
                )
            )
            continue
        results += suite.run(MARTS_SUITE, table, asset=f"{table}~{against}")
    return results


def validate_marts(marts: Mapping[str, pl.DataFrame]) -> list[CheckResult]:
    """Check the marts: keys, ranges, row relations and the relations between marts.

    `marts` maps mart names (`agent_kpis`, `department_kpis`, ...) to frames with the
    contract's columns; a missing name is skipped, and a check is added only for the columns a
    frame has (key columns must exist). Returns one CheckResult per expectation.
    """
    results: list[CheckResult] = []
    for name, rules in _MART_RULES.items():
        frame = marts.get(name)
        if frame is None or not _usable(frame):
            continue
        s = _Suite(frame, MART_KEYS[name])
        _common_mart_checks(s)
        rules(s)
        results += s.run(MARTS_SUITE, f"marts.{name}")
    results += _cross_mart_checks(marts)
    return results


# --------------------------------------------------------------------------------------
# The staged core tables


def _dim_agents(s: _Suite, agent_ids: Sequence[str] | None) -> None:
    s.not_null("deployed_at")
    s.in_set("deployment_status", ["deployed", "failed", "retired"])
    s.between(["hourly_cost_usd"], 0, None)


def _fct_task_runs(s: _Suite, agent_ids: Sequence[str] | None) -> None:
    _known_agents(s, agent_ids, "agent_id")
    s.not_null("execution_time_s", "success_pct", "completed_at")
    s.between(["execution_time_s"], 0, None)
    s.between(["success_pct"], 0, 100)


def _fct_workflow_runs(s: _Suite, agent_ids: Sequence[str] | None) -> None:
    _known_agents(s, agent_ids, "initiator_agent_id")
    s.not_null("started_at")
    s.in_set("status", ["running", "completed", "failed"])
    s.at_least("completed_at", "started_at")
    s.between(["errors", "errors_recovered"], 0, None)
    s.at_least("errors", "errors_recovered")


def _fct_messages(s: _Suite, agent_ids: Sequence[str] | None) -> None:
    _known_agents(s, agent_ids, "sender_agent_id", "receiver_agent_id")
    s.unique(["message_row_id"])
    s.not_null("sent_at")
    s.in_set("status", ["pending", "delivered", "failed"])
    s.at_least("received_at", "sent_at")
    s.at_least("responded_at", "received_at")


def _fct_business_metrics(s: _Suite, agent_ids: Sequence[str] | None) -> None:
    s.not_null("value")


def _dim_business_targets(s: _Suite, agent_ids: Sequence[str] | None) -> None:
    s.at_least("period_end", "period_start")  # period_end is inclusive


def _fct_heartbeats(s: _Suite, agent_ids: Sequence[str] | None) -> None:
    _known_agents(s, agent_ids, "agent_id")
    s.in_set("status", ["ok", "degraded"])
    s.not_null("task_queue", "message_queue")
    s.between(["task_queue", "message_queue"], 0, None)


def _fct_resource_samples(s: _Suite, agent_ids: Sequence[str] | None) -> None:
    _known_agents(s, agent_ids, "agent_id")
    s.not_null("cpu_pct", "memory_mb")
    s.between(["cpu_pct", "memory_mb"], 0, None)


def _fct_agent_errors(s: _Suite, agent_ids: Sequence[str] | None) -> None:
    _known_agents(s, agent_ids, "agent_id")


def _known_agents(s: _Suite, agent_ids: Sequence[str] | None, *columns: str) -> None:
    """Every agent id a row names is in dim_agents (when dim_agents is given)."""
    if agent_ids is None:
        return
    for column in columns:
        s.in_set(column, agent_ids)


_STAGED_RULES: dict[str, Callable[[_Suite, Sequence[str] | None], None]] = {
    "dim_agents": _dim_agents,
    "fct_task_runs": _fct_task_runs,
    "fct_workflow_runs": _fct_workflow_runs,
    "fct_messages": _fct_messages,
    "fct_business_metrics": _fct_business_metrics,
    "dim_business_targets": _dim_business_targets,
    "fct_heartbeats": _fct_heartbeats,
    "fct_resource_samples": _fct_resource_samples,
    "fct_agent_errors": _fct_agent_errors,
}


def validate_staged(
    tables: Mapping[str, pl.DataFrame], *, max_rows: int | None = None
) -> list[CheckResult]:
    """Check the core tables against the row rules of the source contract.

    `tables` maps core table names without schema (`fct_task_runs`, ...) to frames; a
    missing name is skipped. With `max_rows`, a table longer than that is validated by GX on
    a deterministic sample (every k-th row, at most `max_rows` rows) while its key uniqueness
    is still checked exactly, in Polars, on every row. Returns one CheckResult per
    expectation.
    """
    # Every agent id a row names must be in dim_agents (design.md), when dim_agents is given.
    agents = tables.get("dim_agents")
    agent_ids: list[str] | None = None
    if agents is not None and "agent_id" in agents.columns:
        agent_ids = agents["agent_id"].drop_nulls().unique().sort().cast(pl.String).to_list()
    results: list[CheckResult] = []
    for name, rules in _STAGED_RULES.items():
        frame = tables.get(name)
        if frame is None or not _usable(frame):
            continue
        table = f"core.{name}"
        keys = STAGED_KEYS[name]
        sampled = max_rows is not None and frame.height > max_rows
        if sampled and max_rows is not None:
            step = math.ceil(frame.height / max(max_rows, 1))
            s = _Suite(frame.gather_every(step), keys)
            note = f" [GX on 1 row in {step}: {s.frame.height} of {frame.height} rows]"
        else:
            s = _Suite(frame, keys)
            note = ""
        keyed = name not in _UNKEYED_STAGED
        s.key(unique=keyed and not sampled)
        if keyed and sampled:
            results += _exact_uniqueness(table, frame, keys)
        rules(s, agent_ids)
        results += [_with_note(result, note) for result in s.run(STAGED_SUITE, table)]
    return results


def _with_note(result: CheckResult, note: str) -> CheckResult:
    """The result with `note` appended to what it observed."""
    if not note:
        return result
    return CheckResult(
        suite=result.suite,
        table=result.table,
        expectation=result.expectation,
        column=result.column,
        success=result.success,
        observed=(result.observed + note)[: _OBSERVED_MAX_CHARS + len(note)],
        details=result.details,
    )


def _exact_uniqueness(table: str, frame: pl.DataFrame, keys: Sequence[str]) -> list[CheckResult]:
    """Key uniqueness over every row, in Polars (a sample cannot show duplicates)."""
    if not all(k in frame.columns for k in keys):
        return []
    duplicated = frame.select(list(keys)).is_duplicated()
    count = int(duplicated.sum())
    observed = f"{count} of {frame.height} rows unexpected (exact, Polars)"
    if count:
        examples = frame.filter(duplicated).head(_EXAMPLES).select(list(keys)).rows()
        observed += "; e.g. " + "; ".join(_short(tuple(row)) for row in examples)
    if len(keys) == 1:
        expectation, kwargs = "expect_column_values_to_be_unique", {"column": keys[0]}
    else:
        expectation, kwargs = "expect_compound_columns_to_be_unique", {"column_list": list(keys)}
    return [
        CheckResult(
            suite=STAGED_SUITE,
            table=table,
            expectation=expectation,
            column=", ".join(keys),
            success=count == 0,
            observed=observed[:_OBSERVED_MAX_CHARS],
            details=json.dumps(kwargs, sort_keys=True),
        )
    ]
