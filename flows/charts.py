"""The summaries' charts, drawn with matplotlib (Agg: no screen) into PNG bytes.

Each function takes the small frames of a `flows.report.Report` and returns one PNG.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

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


def _chart(
    title: str, rows: pl.DataFrame, nothing: str, draw: Callable[[Figure, Any], None]
) -> bytes:
    """One chart: `draw(figure, axes)` on `rows`, or the `nothing` text where there are none."""
    figure, axes = plt.subplots(figsize=_SIZE)
    if rows.is_empty():
        axes.axis("off")
        axes.text(0.5, 0.5, nothing, ha="center", va="center", color="#616161")
    else:
        draw(figure, axes)
    axes.set_title(title, fontsize=10)
    return _png(figure)


def success_by_department(departments: pl.DataFrame, title: str) -> bytes:
    """Success rate of each department over the last periods (one line per department)."""
    rows = departments.filter(pl.col("success_rate").is_not_null()).sort("period_start")

    def draw(figure: Figure, axes: Any) -> None:
        for (department,), part in rows.group_by("department", maintain_order=True):
            axes.plot(
                part["period_start"].to_list(),
                (part["success_rate"] * 100).to_list(),
                marker="o",
                label=str(department),
            )
        axes.set_ylabel("success rate (%)")
        axes.legend(fontsize=7, ncol=3, loc="lower left")
        axes.grid(alpha=0.3)
        figure.autofmt_xdate()

    return _chart(title, rows, "no tasks in these periods", draw)


def execution_times(agents: pl.DataFrame, title: str) -> bytes:
    """Execution time of each agent in the period: median (bar) and 95th percentile (tick),
    agents grouped by department."""
    rows = agents.filter(pl.col("exec_time_p50_s").is_not_null()).sort("department", "agent_id")

    def draw(figure: Figure, axes: Any) -> None:
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

    return _chart(title, rows, "no tasks in this period", draw)


def revenue_against_target(business: pl.DataFrame, title: str) -> bytes:
    """Revenue and lead pipeline year to date against the straight line to their targets
    (the target times the mart's expected progress)."""

    def draw(figure: Figure, axes: Any) -> None:
        days = business["date"].to_list()
        for column, target, colour, label in [
            ("revenue_ytd_usd", "revenue_target_usd", "#2e7d32", "revenue"),
            ("lead_pipeline_ytd_usd", "lead_pipeline_target_usd", "#6a1b9a", "lead pipeline"),
        ]:
            axes.plot(days, business[column].to_list(), color=colour, label=f"{label} YTD")
            axes.plot(
                days,
                (business[target] * business["expected_progress_pct"]).to_list(),
                color=colour,
                linestyle="--",
                alpha=0.6,
                label=f"{label} expected",
            )
        axes.set_ylabel("USD")
        axes.legend(fontsize=7)
        axes.grid(alpha=0.3)
        figure.autofmt_xdate()

    return _chart(title, business, "no business figures this year", draw)


def department_comparison(departments: pl.DataFrame, title: str) -> bytes:
    """Success rate and uptime of each department in the period, coloured by health."""

    def draw(figure: Figure, axes: Any) -> None:
        names = departments["department"].to_list()
        positions = list(range(len(names)))
        colours = [
            _HEALTH_COLOURS.get(h or "unknown", "#9e9e9e") for h in departments["health_status"]
        ]
        success = [0 if v is None else v * 100 for v in departments["success_rate"]]
        uptime = [0 if v is None else v * 100 for v in departments["uptime_pct"]]
        axes.bar(
            [p - 0.2 for p in positions],
            success,
            width=0.4,
            color=colours,
            label="success rate (colour: health)",
        )
        axes.bar([p + 0.2 for p in positions], uptime, width=0.4, color="#90a4ae", label="uptime")
        axes.set_xticks(positions, names, fontsize=8)
        axes.set_ylabel("%")
        axes.set_ylim(0, 105)
        axes.legend(fontsize=7, loc="lower right")
        axes.grid(axis="y", alpha=0.3)  # fmt: skip

    return _chart(title, departments, "no departments", draw)
