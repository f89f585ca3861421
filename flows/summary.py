"""The text summary printed after a run (`make run`, `agentkpi run`, `agentkpi summary`)."""

from __future__ import annotations

import polars as pl

from warehouse.read import Summary


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _num(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}{unit}"


def apart_from(value: float, threshold: float, style: str = ",.{}f", digits: int = 2) -> str:
    """`value` in `style` with as many digits (from `digits`, at most 4 more) as it takes
    not to read as `threshold`: a success rate of 0.9496 breaks the 0.95 threshold, and
    shows as 0.9496, not 0.95."""
    for more in range(5):
        shown = format(value, style.format(digits + more))
        if shown != format(threshold, style.format(digits + more)):
            break
    return shown


def values_apart(alerts: pl.DataFrame, style: str = ",.{}f", digits: int = 2) -> pl.DataFrame:
    """Alert rows with `value` as text, each apart from its `threshold` (see `apart_from`)."""
    values = zip(alerts["value"], alerts["threshold"], strict=True)
    shown = [apart_from(v, t, style, digits) for v, t in values]
    return alerts.with_columns(pl.Series("value", shown, dtype=pl.String))


def _table(frame: pl.DataFrame, columns: dict[str, str]) -> list[str]:
    """Rows of a small frame as aligned text columns (`columns` maps column → header)."""
    cells = [list(columns.values())]
    for row in frame.iter_rows(named=True):
        line = []
        for column in columns:
            value = row[column]
            if isinstance(value, float):
                is_rate = "rate" in column or "pct" in column
                line.append(_pct(value) if is_rate else _num(value))
            else:
                line.append("n/a" if value is None else str(value))
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]


def format_summary(summary: Summary) -> str:
    """Plain text for a terminal: the latest complete day, rankings, departments, alerts and
    what the last run loaded."""
    lines = [f"agentkpi warehouse: {summary.warehouse.resolve()}", f"as of: {summary.as_of}"]
    if summary.day is None or summary.system is None:
        lines.append("no complete day in the warehouse yet")
    else:
        s = summary.system
        lines += [
            "",
            f"System, {summary.day} (latest complete day)",
            f"  agents active {s['agents_active']}/{s['agents_registered']}"
            f"  healthy {s['agents_healthy']}"
            f"  deployment success {_pct(s['deployment_success_rate'])}",
            f"  tasks {s['tasks_total']:,}  success {_pct(s['success_rate'])}"
            f"  errors {_pct(s['error_rate'])}  exec p95 {_num(s['exec_time_p95_s'], ' s')}",
            f"  response avg {_num(s['response_time_avg_s'], ' s')}"
            f"  messages {s['messages_total']:,}"
            f"  delivered {_pct(s['communication_success_rate'])}",
            f"  workflows {s['workflows_started']} started, {s['workflows_completed']} completed"
            f" ({_pct(s['workflow_completion_rate'])}),"
            f" recovery {_pct(s['error_recovery_rate'])}",
            f"  operating cost {_num(s['operating_cost_usd'], ' USD')}",
        ]
        ranking = {
            "rank_overall": "rank",
            "agent_id": "agent",
            "department": "department",
            "tasks_succeeded": "succeeded",
            "success_rate": "success",
            "health_status": "health",
        }
        lines += ["", "Top 3 agents", *_table(summary.top_agents, ranking)]
        lines += ["", "Bottom 3 agents", *_table(summary.bottom_agents, ranking)]
        lines += [
            "",
            "Departments",
            *_table(
                summary.departments,
                {
                    "department": "department",
                    "tasks_total": "tasks",
                    "success_rate": "success",
                    "response_time_avg_s": "response s",
                    "uptime_pct": "uptime",
                    "health_status": "health",
                },
            ),
        ]
        lines += ["", f"Alerts on {summary.day}: {summary.alerts.height}"]
        if summary.alerts.height:
            lines += _table(
                values_apart(summary.alerts.head(10)),
                {
                    "level": "level",
                    "agent_id": "agent",
                    "metric": "metric",
                    "value": "value",
                    "threshold": "threshold",
                },
            )
            if summary.alerts.height > 10:
                lines.append(f"  ... and {summary.alerts.height - 10} more (marts.alerts)")
    lines += [
        "",
        "Last run (rows read = loaded + duplicates + quarantined)",
        *_table(
            summary.last_run,
            {
                "source": "source",
                "rows_read": "read",
                "rows_loaded": "loaded",
                "rows_duplicate": "duplicates",
                "rows_quarantined": "quarantined",
                "run_status": "status",
            },
        ),
    ]
    return "\n".join(lines)
