"""What a stakeholder summary says, derived from mart rows alone (never from raw data).

Each function takes mart rows (as `warehouse.read` returns them) and the period in question,
and returns a small frame that a report renders as it is. Thresholds are arguments.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from transforms.marts import BUSINESS_SUMS
from transforms.periods import period_end, period_start

# (metric, kind): the system KPIs a summary leads with. `kind` says how to show the value and
# whether a rise is good: "rate_up" (a rate, higher is better), "rate_down", "seconds_down",
# "count", "usd".
HEADLINE = [
    ("agents_active", "count"),
    ("agents_healthy", "count"),
    ("tasks_total", "count"),
    ("success_rate", "rate_up"),
    ("error_rate", "rate_down"),
    ("exec_time_p95_s", "seconds_down"),
    ("response_time_avg_s", "seconds_down"),
    ("workflow_completion_rate", "rate_up"),
    ("error_recovery_rate", "rate_up"),
    ("communication_success_rate", "rate_up"),
    ("deployment_success_rate", "rate_up"),
    ("operating_cost_usd", "usd"),
]

# A department's business figures, in the order a summary names them.
BUSINESS_FIGURES = BUSINESS_SUMS

# Fewer points than this make no correlation worth stating.
MIN_CORRELATION_POINTS = 4


def containing_period(period: str, day: date) -> date:
    """The first date of the `period` (day, week, month) that contains `day`."""
    return pl.select(period_start(pl.lit(day), period)).item()  # type: ignore[no-any-return]


def previous_period(period: str, start: date) -> date:
    """The first date of the period before the one starting at `start`."""
    before = pl.lit(start) - pl.duration(days=1)
    return pl.select(period_start(before, period)).item()  # type: ignore[no-any-return]


def next_period(period: str, start: date) -> date:
    """The first date after the period starting at `start`."""
    return pl.select(period_end(pl.lit(start), period)).item()  # type: ignore[no-any-return]


def headline(system: pl.LazyFrame, start: date, previous: date) -> pl.LazyFrame:
    """One row per headline KPI (HEADLINE order): metric, kind, value, previous and change
    (value − previous; NULL where either is NULL), from the system rows of the two periods."""
    metrics = [m for m, _ in HEADLINE]

    def values(at: date, name: str) -> pl.LazyFrame:
        return (
            system.filter(pl.col("period_start") == at)
            .select([pl.col(m).cast(pl.Float64) for m in metrics])
            .unpivot(variable_name="metric", value_name=name)
        )

    kinds = pl.LazyFrame(
        {"metric": metrics, "kind": [k for _, k in HEADLINE], "order": range(len(HEADLINE))}
    )
    return (
        kinds.join(values(start, "value"), on="metric", how="left")
        .join(values(previous, "previous"), on="metric", how="left")
        .with_columns((pl.col("value") - pl.col("previous")).alias("change"))
        .sort("order")
        .drop("order")
    )


def department_comparison(departments: pl.LazyFrame, start: date) -> pl.LazyFrame:
    """The departments of one period side by side, best success rate first."""
    return (
        departments.filter(pl.col("period_start") == start)
        .select(
            "department",
            "rank_success",
            "health_status",
            "agents_active",
            "agents_total",
            "agents_green",
            "agents_yellow",
            "agents_red",
            "tasks_total",
            "success_rate",
            "error_rate",
            "exec_time_p95_s",
            "response_time_avg_s",
            "uptime_pct",
            "operating_cost_usd",
            "revenue_usd",
            "lead_pipeline_usd",
            "cost_savings_usd",
        )
        .sort("rank_success", "department", nulls_last=True)
    )


_RANKING_COLUMNS = [
    "rank_overall",
    "agent_id",
    "department",
    "tasks_succeeded",
    "tasks_total",
    "success_rate",
    "response_time_avg_s",
    "health_status",
]


def top_agents(agents: pl.LazyFrame, start: date, n: int) -> pl.LazyFrame:
    """The `n` most productive agents of the period (rank_overall, among agents with tasks)."""
    return (
        agents.filter((pl.col("period_start") == start) & (pl.col("tasks_total") > 0))
        .sort("rank_overall", "agent_id")
        .head(n)
        .select(_RANKING_COLUMNS)
    )


def bottom_agents(agents: pl.LazyFrame, start: date, n: int) -> pl.LazyFrame:
    """The `n` least productive agents of the period, the least first."""
    return (
        agents.filter((pl.col("period_start") == start) & (pl.col("tasks_total") > 0))
        .sort("rank_overall", "agent_id", descending=[True, False])
        .head(n)
        .select(_RANKING_COLUMNS)
    )


def agents_needing_attention(
    agents: pl.LazyFrame,
    start: date,
    success_green: float,
    success_red: float,
    response_green_s: float,
    response_red_s: float,
) -> pl.LazyFrame:
    """One row per threshold an agent in red or yellow broke in the period: agent_id,
    department, health_status, metric, level (critical or warning), value, threshold. The
    thresholds are those of the health status (red beyond the critical one)."""
    rows = agents.filter(
        (pl.col("period_start") == start) & pl.col("health_status").is_in(["red", "yellow"])
    )
    success, response = pl.col("success_rate"), pl.col("response_time_avg_s")
    checks = [
        ("success_rate", "critical", success < success_red, success, success_red),
        ("success_rate", "warning", success.is_between(success_red, success_green, "left"),
         success, success_green),
        ("response_time_avg_s", "critical", response > response_red_s, response, response_red_s),
        ("response_time_avg_s", "warning", response.is_between(response_green_s, response_red_s),
         response, response_green_s),
    ]  # fmt: skip
    broken = [
        rows.filter(test.fill_null(False)).select(
            "agent_id",
            "department",
            "health_status",
            pl.lit(metric).alias("metric"),
            pl.lit(level).alias("level"),
            value.cast(pl.Float64).alias("value"),
            pl.lit(threshold, dtype=pl.Float64).alias("threshold"),
        )
        for metric, level, test, value, threshold in checks
    ]
    return pl.concat(broken).sort(
        pl.col("health_status") != "red", "department", "agent_id", "metric"
    )


def business_impact(departments: pl.LazyFrame, starts: list[date]) -> pl.LazyFrame:
    """How each department's success rate moved with each of its business figures over the
    given periods: one row per (department, figure) that is not zero throughout, with the
    number of periods where both are known (`points`), Pearson's `correlation` (NULL with
    fewer than MIN_CORRELATION_POINTS points, or when either does not vary) and a `reading`
    that says so in words."""
    rows = departments.filter(pl.col("period_start").is_in(starts))
    long = rows.select("department", "period_start", "success_rate", *BUSINESS_FIGURES).unpivot(
        index=["department", "period_start", "success_rate"],
        variable_name="figure",
        value_name="value",
    )
    known = pl.col("success_rate").is_not_null() & pl.col("value").is_not_null()
    x, y = pl.col("success_rate").filter(known), pl.col("value").cast(pl.Float64).filter(known)
    stats = (
        long.group_by("department", "figure")
        .agg(
            known.sum().alias("points"),
            (pl.col("value").fill_null(0) != 0).any().alias("_moves"),
            (x.std() > 0).alias("_x_varies"),
            (y.std() > 0).alias("_y_varies"),
            pl.corr(x, y).alias("_r"),
        )
        .filter(pl.col("_moves"))
    )
    enough = pl.col("points") >= MIN_CORRELATION_POINTS
    varies = pl.col("_x_varies").fill_null(False) & pl.col("_y_varies").fill_null(False)
    r = pl.col("_r")
    strength = (
        pl.when(r.abs() >= 0.7)
        .then(pl.lit("strong"))
        .when(r.abs() >= 0.4)
        .then(pl.lit("moderate"))
        .otherwise(pl.lit("weak"))
    )
    direction = pl.when(r >= 0).then(pl.lit("positive")).otherwise(pl.lit("negative"))
    reading = (
        pl.when(~enough)
        .then(pl.format("too few periods to say ({} of {} needed)", "points",
                        pl.lit(MIN_CORRELATION_POINTS)))
        .when(~varies)
        .then(pl.lit("no variation to correlate"))
        .otherwise(pl.format("{} {} (r = {}, {} periods)", strength, direction,
                             r.round(2), "points"))
    )  # fmt: skip
    figure_order = pl.col("figure").replace_strict(
        BUSINESS_FIGURES, list(range(len(BUSINESS_FIGURES))), return_dtype=pl.Int64
    )
    return (
        stats.with_columns(
            pl.when(enough & varies).then(r).otherwise(None).alias("correlation"),
            reading.alias("reading"),
        )
        .sort("department", figure_order)
        .select("department", "figure", "points", "correlation", "reading")
    )


def late_sources(
    freshness: pl.LazyFrame, as_of: pl.Expr, late_after_s: dict[str, float]
) -> pl.LazyFrame:
    """Each source's newest data (`newest_at`), its age at `as_of` in seconds, and whether
    it is late: older than `late_after_s[source]` (a source without a limit is never late;
    a source without data always is)."""
    limits = pl.LazyFrame(
        {"source": list(late_after_s), "late_after_s": list(late_after_s.values())},
        schema={"source": pl.String, "late_after_s": pl.Float64},
    )
    age = (as_of - pl.col("newest_at")).dt.total_microseconds() / 1e6
    return (
        freshness.join(limits, on="source", how="left")
        .with_columns(age.alias("age_s"))
        .with_columns(
            (
                pl.col("newest_at").is_null()
                | (pl.col("age_s") > pl.col("late_after_s")).fill_null(False)
            ).alias("is_late")
        )
        .select("source", "newest_at", "age_s", "late_after_s", "is_late")
        .sort("source")
    )
