"""The summaries' charts, drawn with matplotlib (Agg: no screen) into PNG bytes.

Each function takes the small frames of a `flows.report.Report` and returns one PNG.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import polars as pl
from matplotlib.figure import Figure

_SIZE = (8.0, 3.6)
_DPI = 100
_HEALTH_COLOURS = {"green": "#2e7d32", "yellow": "#f9a825", "red": "#c62828", "unknown": "#9e9e9e"}


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def _empty(figure: Figure, axes, text: str) -> None:  # type: ignore[no-untyped-def]
    axes.axis("off")
    axes.text(0.5, 0.5, text, ha="center", va="center", color="#616161")


def success_by_department(departments: pl.DataFrame, title: str) -> bytes:
    """Success rate of each department over the last periods (one line per department)."""
    figure, axes = plt.subplots(figsize=_SIZE)
    rows = departments.filter(pl.col("success_rate").is_not_null()).sort("period_start")
    if rows.is_empty():
        _empty(figure, axes, "no tasks in these periods")
    for (department,), part in rows.group_by("department", maintain_order=True):
        axes.plot(
            part["period_start"].to_list(),
            (part["success_rate"] * 100).to_list(),
            marker="o",
            label=str(department),
        )
    if not rows.is_empty():
        axes.set_ylabel("success rate (%)")
        axes.legend(fontsize=7, ncol=3, loc="lower left")
        axes.grid(alpha=0.3)
        figure.autofmt_xdate()
    axes.set_title(title, fontsize=10)
    return _png(figure)


def execution_times(agents: pl.DataFrame, title: str) -> bytes:
    """Execution time of each agent in the period: median (bar) and 95th percentile (tick),
    agents grouped by department."""
    figure, axes = plt.subplots(figsize=_SIZE)
    rows = agents.filter(pl.col("exec_time_p50_s").is_not_null()).sort("department", "agent_id")
    if rows.is_empty():
        _empty(figure, axes, "no tasks in this period")
    else:
        positions = list(range(rows.height))
        axes.bar(positions, rows["exec_time_p50_s"].to_list(), color="#1565c0", label="p50")
        axes.scatter(
            positions, rows["exec_time_p95_s"].to_list(), marker="_", s=120, color="#c62828",
            label="p95",
        )  # fmt: skip
        axes.set_xticks(positions, rows["agent_id"].to_list(), rotation=90, fontsize=6)
        axes.set_ylabel("seconds")
        axes.legend(fontsize=7)
        axes.grid(axis="y", alpha=0.3)
    axes.set_title(title, fontsize=10)
    return _png(figure)


def revenue_against_target(business: pl.DataFrame, title: str) -> bytes:
    """Revenue and lead pipeline year to date against the straight line to their targets."""
    figure, axes = plt.subplots(figsize=_SIZE)
    if business.is_empty():
        _empty(figure, axes, "no business figures this year")
    else:
        days = business["date"].to_list()
        day_of_year = business["date"].dt.ordinal_day()
        days_in_year = pl.Series([366 if d.year % 4 == 0 else 365 for d in days])
        share = day_of_year / days_in_year
        for column, target, colour, label in [
            ("revenue_ytd_usd", "revenue_target_usd", "#2e7d32", "revenue"),
            ("lead_pipeline_ytd_usd", "lead_pipeline_target_usd", "#6a1b9a", "lead pipeline"),
        ]:
            axes.plot(days, business[column].to_list(), color=colour, label=f"{label} YTD")
            axes.plot(
                days,
                (business[target] * share).to_list(),
                color=colour,
                linestyle="--",
                alpha=0.6,
                label=f"{label} expected",
            )
        axes.set_ylabel("USD")
        axes.legend(fontsize=7)
        axes.grid(alpha=0.3)
        figure.autofmt_xdate()
    axes.set_title(title, fontsize=10)
    return _png(figure)


def department_comparison(departments: pl.DataFrame, title: str) -> bytes:
    """Success rate and uptime of each department in the period, coloured by health."""
    figure, axes = plt.subplots(figsize=_SIZE)
    if departments.is_empty():
        _empty(figure, axes, "no departments")
    else:
        names = departments["department"].to_list()
        positions = list(range(len(names)))
        colours = [
            _HEALTH_COLOURS.get(h or "unknown", "#9e9e9e") for h in departments["health_status"]
        ]
        success = [None if v is None else v * 100 for v in departments["success_rate"]]
        uptime = [None if v is None else v * 100 for v in departments["uptime_pct"]]
        axes.bar(
            [p - 0.2 for p in positions],
            [v or 0 for v in success],
            width=0.4,
            color=colours,
            label="success rate (colour: health)",
        )
        axes.bar(
            [p + 0.2 for p in positions],
            [v or 0 for v in uptime],
            width=0.4,
            color="#90a4ae",
            label="uptime",
        )
        axes.set_xticks(positions, names, fontsize=8)
        axes.set_ylabel("%")
        axes.set_ylim(0, 105)
        axes.legend(fontsize=7, loc="lower right")
        axes.grid(axis="y", alpha=0.3)  # fmt: skip
    axes.set_title(title, fontsize=10)
    return _png(figure)
