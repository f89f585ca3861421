"""Stakeholder summaries: one period (day, week or month) from the marts alone, as a
self-contained HTML file (charts embedded), the same content as Markdown, and the charts as
PNG, written under stable names in a reports directory.

`build_report` reads the published warehouse (read-only, as a BI tool does) and derives each
section with `transforms.summaries`; `render_markdown` and `render_html` only lay it out.
Every value that comes from data is escaped: agent ids, names and task types may hold markup.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from flows import charts
from flows.deliver import Message
from flows.summary import values_apart
from transforms import summaries
from transforms.marts import KpiParams
from warehouse import read

# How many periods the trends (charts, business impact) look back over, the report's own
# included.
TREND_PERIODS = 8
RANKED_AGENTS = 5
# A source whose newest data is older than this at as_of is late.
LATE_AFTER_S = {
    "agent_performance": 2 * 3600.0,
    "workflow_executions": 6 * 3600.0,
    "agent_communications": 2 * 3600.0,
    "business_metrics": 2 * 86400.0,
    "logs": 2 * 3600.0,
}
FOLDERS = {"day": "daily", "week": "weekly", "month": "monthly"}
CHARTS = {
    "success_by_department": "Success rate by department",
    "execution_times": "Execution time by agent",
    "revenue_against_target": "Revenue and lead pipeline against target",
    "department_comparison": "Departments compared",
}


class ReportError(RuntimeError):
    """A summary that cannot be built (no such period in the marts)."""


@dataclass
class Report:
    """One period's summary: every section as a small frame or dict of mart figures."""

    period: str
    start: date
    end: date  # the first date after the period
    label: str  # 2026-11-23, 2026-W47, 2026-11
    as_of: datetime | None
    is_complete: bool
    headline: pl.DataFrame
    business: dict[str, Any] | None
    departments: pl.DataFrame
    top_agents: pl.DataFrame
    bottom_agents: pl.DataFrame
    attention: pl.DataFrame
    workflow_figures: dict[str, Any]
    workflows: pl.DataFrame
    impact: pl.DataFrame
    quarantine: pl.DataFrame
    failed_checks: pl.DataFrame
    sources: pl.DataFrame
    trend: pl.DataFrame = field(repr=False)  # department rows of the last periods
    agents: pl.DataFrame = field(repr=False)  # agent rows of the period
    business_year: pl.DataFrame = field(repr=False)

    @property
    def title(self) -> str:
        kind = {"day": "Daily", "week": "Weekly", "month": "Monthly"}[self.period]
        return f"agentkpi {kind.lower()} summary, {self.label}"

    def stem(self) -> str:
        """The report's path under the reports directory, without suffix."""
        return f"{FOLDERS[self.period]}/{self.label}"


def period_label(period: str, start: date) -> str:
    """2026-11-23 for a day, 2026-W47 for an ISO week, 2026-11 for a month."""
    if period == "week":
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return start.strftime("%Y-%m")
    return start.isoformat()


def build_report(
    warehouse: Path, period: str, day: date | None = None, params: KpiParams | None = None
) -> Report:
    """The summary of the `period` containing `day` (default: the latest complete one)."""
    params = params or KpiParams()
    if period not in FOLDERS:
        raise ReportError(f"period must be one of day, week, month, not {period!r}")
    if day is None:
        start = read.latest_complete_period(warehouse, period)
        if start is None:
            raise ReportError(f"no complete {period} in the warehouse yet")
    else:
        start = summaries.containing_period(period, day)
    starts = [start]
    for _ in range(TREND_PERIODS - 1):
        starts.append(summaries.previous_period(period, starts[-1]))
    end = summaries.next_period(period, start)
    rows = read.report_rows(warehouse, period, starts, end - timedelta(days=1))
    if rows.system.filter(pl.col("period_start") == start).is_empty():
        raise ReportError(f"the marts have no {period} starting {start}")
    last_day = end - timedelta(days=1)
    if rows.as_of is not None:
        last_day = min(last_day, rows.as_of.date())
    business = rows.business.filter(pl.col("date") <= last_day).tail(1)
    system = rows.system.filter(pl.col("period_start") == start).row(0, named=True)
    return Report(
        period=period,
        start=start,
        end=end,
        label=period_label(period, start),
        as_of=rows.as_of,
        is_complete=rows.as_of is not None
        and datetime.combine(end, datetime.min.time()) <= rows.as_of,
        headline=summaries.headline(rows.system.lazy(), start, starts[1]).collect(),
        business=business.row(0, named=True) if business.height else None,
        departments=summaries.department_comparison(rows.departments.lazy(), start).collect(),
        top_agents=summaries.top_agents(rows.agents.lazy(), start, RANKED_AGENTS).collect(),
        bottom_agents=summaries.bottom_agents(rows.agents.lazy(), start, RANKED_AGENTS).collect(),
        attention=summaries.agents_needing_attention(
            rows.agents.lazy(),
            start,
            params.success_green,
            params.success_red,
            params.response_green_s,
            params.response_red_s,
        ).collect(),
        workflow_figures={
            k: system[k]
            for k in [
                "workflows_started",
                "workflows_completed",
                "workflows_failed",
                "workflows_running",
                "workflow_completion_rate",
                "cross_department_completion_rate",
                "error_recovery_rate",
                "multi_agent_workflows_succeeded",
            ]
        },
        workflows=rows.workflows.head(10),
        impact=summaries.business_impact(rows.departments.lazy(), starts).collect(),
        quarantine=rows.quarantine,
        failed_checks=rows.failed_checks,
        sources=summaries.late_sources(
            rows.freshness.lazy(), pl.lit(rows.as_of, dtype=pl.Datetime("us")), LATE_AFTER_S
        ).collect(),
        trend=rows.departments,
        agents=rows.agents,
        business_year=rows.business.filter(pl.col("date") <= last_day),
    )


def render_charts(report: Report) -> dict[str, bytes]:
    """Every chart of the report as PNG bytes, by name (CHARTS)."""
    return {
        "success_by_department": charts.success_by_department(
            report.trend,
            f"{CHARTS['success_by_department']}, last {TREND_PERIODS} {report.period}s",
        ),
        "execution_times": charts.execution_times(
            report.agents, f"{CHARTS['execution_times']} (p50 bar, p95 tick), {report.label}"
        ),
        "revenue_against_target": charts.revenue_against_target(
            report.business_year, f"{CHARTS['revenue_against_target']}, {report.start.year}"
        ),
        "department_comparison": charts.department_comparison(
            report.departments, f"{CHARTS['department_comparison']}, {report.label}"
        ),
    }


# ---------------------------------------------------------------------------------------------
# Values as text


def _value(value: Any, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind.startswith("rate") or kind == "pct":
        return f"{value * 100:.1f}%"
    if kind.startswith("seconds"):
        return f"{value:,.2f} s"
    if kind == "usd":
        return f"${value:,.0f}"
    if kind == "ratio":
        return f"{value:,.2f}"
    if isinstance(value, float):
        return f"{value:,.0f}" if kind == "count" else f"{value:,.2f}"
    return str(value)


def _change(row: dict[str, Any]) -> str:
    change, kind = row["change"], row["kind"]
    if change is None:
        return "n/a"
    if kind.startswith("rate"):
        text = f"{change * 100:+.1f} pp"
    elif kind.startswith("seconds"):
        text = f"{change:+,.2f} s"
    elif kind == "usd":
        text = f"{'+' if change >= 0 else '-'}${abs(change):,.0f}"
    else:
        text = f"{change:+,.0f}"
    if change and kind.endswith("_up"):
        text += " (better)" if change > 0 else " (worse)"
    elif change and kind.endswith("_down"):
        text += " (better)" if change < 0 else " (worse)"
    return text


_KINDS = {
    "success_rate": "rate",
    "error_rate": "rate",
    "uptime_pct": "pct",
    "correlation": "ratio",
    "exec_time_p95_s": "seconds",
    "exec_time_p50_s": "seconds",
    "response_time_avg_s": "seconds",
    "duration_avg_s": "seconds",
    "completion_rate": "rate",
    "recovery_rate": "rate",
    "operating_cost_usd": "usd",
    "revenue_usd": "usd",
    "lead_pipeline_usd": "usd",
    "cost_savings_usd": "usd",
    "age_s": "hours",
}


def _cell(column: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    kind = _KINDS.get(column, "count" if isinstance(value, int | float) else "text")
    if kind == "hours":
        return "n/a" if value is None else f"{value / 3600:,.1f} h"
    if column == "value" or column == "threshold":
        return "n/a" if value is None else f"{value:,.3g}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return _value(value, kind)


def _sections(report: Report) -> list[tuple[str, str, pl.DataFrame | None, list[str]]]:
    """(heading, intro text, table or None, notes) per section, the same for every format.
    The texts hold no data values; tables and notes are escaped by the renderer."""
    b = report.business
    business_notes = []
    if b is not None:
        on_track = "on track" if b["revenue_on_track"] else "behind"
        business_notes = [
            f"Revenue year to date {_value(b['revenue_ytd_usd'], 'usd')} of "
            f"{_value(b['revenue_target_usd'], 'usd')} ({_value(b['revenue_progress_pct'], 'pct')}"
            f"; expected by {b['date']}: {_value(b['expected_progress_pct'], 'pct')}): {on_track}; "
            f"projected for the year {_value(b['revenue_projected_annual_usd'], 'usd')}.",
            f"Lead pipeline year to date {_value(b['lead_pipeline_ytd_usd'], 'usd')} of "
            f"{_value(b['lead_pipeline_target_usd'], 'usd')} "
            f"({_value(b['lead_pipeline_progress_pct'], 'pct')}).",
            f"Cost savings year to date {_value(b['cost_savings_ytd_usd'], 'usd')}; operating "
            f"cost {_value(b['operating_cost_ytd_usd'], 'usd')}; ROI {_value(b['roi'], 'ratio')}.",
        ]
    w = report.workflow_figures
    workflow_notes = [
        f"{w['workflows_started']} started: {w['workflows_completed']} completed, "
        f"{w['workflows_failed']} failed, {w['workflows_running']} running; completion rate "
        f"{_value(w['workflow_completion_rate'], 'rate')} (across departments "
        f"{_value(w['cross_department_completion_rate'], 'rate')}); errors recovered "
        f"{_value(w['error_recovery_rate'], 'rate')}; multi-agent workflows succeeded so far "
        f"{w['multi_agent_workflows_succeeded']}."
    ]
    held = int(report.quarantine["rows"].sum()) if report.quarantine.height else 0
    late = report.sources.filter(pl.col("is_late"))
    quality_notes = [
        f"{held:,} rows held in quarantine; {report.failed_checks.height} checks failed in the "
        f"last run; {late.height} sources late."
    ]
    headline = report.headline.with_columns(
        pl.struct("value", "kind")
        .map_elements(lambda r: _value(r["value"], r["kind"]), return_dtype=pl.String)
        .alias("value"),
        pl.struct("previous", "kind")
        .map_elements(lambda r: _value(r["previous"], r["kind"]), return_dtype=pl.String)
        .alias("previous"),
        pl.struct("change", "kind").map_elements(_change, return_dtype=pl.String).alias("change"),
    ).drop("kind")
    return [
        ("Headline", f"System KPIs of {report.label} against the {report.period} before.",
         headline, []),
        ("Business value", "Against the annual targets.", None, business_notes),
        ("Departments", "Side by side, best success rate first.", report.departments.select(
            "department", "health_status", "agents_active", "agents_red", "tasks_total",
            "success_rate", "exec_time_p95_s", "response_time_avg_s", "uptime_pct",
            "operating_cost_usd", "revenue_usd", "lead_pipeline_usd"), []),
        ("Most productive agents", "By tasks succeeded, then success rate.", report.top_agents, []),
        ("Least productive agents", "The least first.", report.bottom_agents, []),
        ("Agents in red or yellow", "Each threshold broken.",
         values_apart(report.attention, ",.{}g", 3), []),
        ("Workflows", "Busiest workflows of the period.", report.workflows.select(
            "workflow_name", "runs", "completed", "failed", "completion_rate", "duration_avg_s",
            "errors", "errors_recovered", "recovery_rate"), workflow_notes),
        ("Business impact", f"Success rate against each business figure, per department, over "
         f"the last {TREND_PERIODS} {report.period}s.", report.impact, []),
        ("Data quality", "Each source's newest data, and whether it is late.", report.sources,
         quality_notes
         + [f"failed: {r['table_name']} {r['expectation']} ({r['column_name']}): {r['observed']}"
            for r in report.failed_checks.iter_rows(named=True)]),
        ("Held in quarantine", "Rows and lines held, by source and the rule they broke.",
         report.quarantine, []),
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Markdown

# Markdown's inline punctuation; HTML is escaped as entities first.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~])")


def _md(text: str) -> str:
    """Text from data, safe in Markdown: HTML escaped, Markdown's punctuation backslashed."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def _md_table(frame: pl.DataFrame) -> list[str]:
    if frame.is_empty():
        return ["(none)"]
    lines = [
        "| " + " | ".join(_md(c) for c in frame.columns) + " |",
        "|" + "---|" * len(frame.columns),
    ]
    for row in frame.iter_rows(named=True):
        lines.append("| " + " | ".join(_md(_cell(c, v)) for c, v in row.items()) + " |")
    return lines


def render_markdown(report: Report, chart_paths: dict[str, str] | None = None) -> str:
    """The summary as Markdown; `chart_paths` (chart name → relative path) links the PNGs."""
    lines = [f"# {_md(report.title)}", "", _md(_period_line(report)), ""]
    for heading, intro, table, notes in _sections(report):
        lines += [f"## {heading}", "", _md(intro), ""]
        lines += [f"- {_md(n)}" for n in notes]
        if notes:
            lines.append("")
        if table is not None:
            lines += [*_md_table(table), ""]
    if chart_paths:
        lines += ["## Charts", ""]
        lines += [f"![{CHARTS[name]}]({path})" for name, path in chart_paths.items()]
        lines.append("")
    return "\n".join(lines)


def _period_line(report: Report) -> str:
    state = "complete" if report.is_complete else "not complete yet"
    return (
        f"{report.period} {report.start} to {report.end - timedelta(days=1)} ({state}); "
        f"data as of {report.as_of}"
    )


# ---------------------------------------------------------------------------------------------
# HTML

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif;
       color: #212121; max-width: 860px; margin: 0 auto; padding: 16px; }
h1 { font-size: 22px; } h2 { font-size: 17px; border-bottom: 1px solid #e0e0e0; }
table { border-collapse: collapse; font-size: 12px; margin: 8px 0; }
th, td { border: 1px solid #e0e0e0; padding: 3px 6px; text-align: right; }
th { background: #f5f5f5; } td.text { text-align: left; }
.green { color: #2e7d32; font-weight: bold; } .yellow { color: #f9a825; font-weight: bold; }
.red { color: #c62828; font-weight: bold; } .note { color: #616161; font-size: 13px; }
img { max-width: 100%; height: auto; }
"""


def _html_table(frame: pl.DataFrame) -> str:
    if frame.is_empty():
        return '<p class="note">(none)</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = []
    for row in frame.iter_rows(named=True):
        cells = []
        for column, value in row.items():
            text = html.escape(_cell(column, value))
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            health = f' class="{value}"' if value in ("green", "yellow", "red") else ""
            cells.append(
                f"<td{' class=text' if not numeric and not health else health}>{text}</td>"
            )
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def render_html(report: Report, pngs: dict[str, bytes]) -> str:
    """The summary as one self-contained HTML page, the charts embedded as data URIs."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(report.title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(report.title)}</h1>",
        f'<p class="note">{html.escape(_period_line(report))}</p>',
    ]
    for heading, intro, table, notes in _sections(report):
        parts.append(f"<h2>{html.escape(heading)}</h2><p class=note>{html.escape(intro)}</p>")
        if notes:
            parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
        if table is not None:
            parts.append(_html_table(table))
    parts.append("<h2>Charts</h2>")
    for name, png in pngs.items():
        data = base64.b64encode(png).decode("ascii")
        alt = html.escape(CHARTS[name])
        parts.append(f'<p><img id="{name}" alt="{alt}" src="data:image/png;base64,{data}"></p>')
    parts.append("</body></html>")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# Writing


@dataclass
class WrittenReport:
    """Where a report was written."""

    html: Path
    markdown: Path
    charts: dict[str, Path]


def write_report(report: Report, reports_dir: Path) -> WrittenReport:
    """Write the HTML, the Markdown and the PNGs under their stable names (e.g.
    `daily/2026-11-23.html`, `daily/2026-11-23.md`, `daily/2026-11-23/<chart>.png`). Each
    file is written beside its target and renamed over it, so a reader never sees half."""
    pngs = render_charts(report)
    base = reports_dir / report.stem()
    chart_dir = base.parent / base.name
    chart_dir.mkdir(parents=True, exist_ok=True)
    chart_paths = {}
    for name, png in pngs.items():
        _write_atomic(chart_dir / f"{name}.png", png)
        chart_paths[name] = chart_dir / f"{name}.png"
    relative = {name: f"{base.name}/{name}.png" for name in pngs}
    markdown = base.with_suffix(".md")
    page = base.with_suffix(".html")
    _write_atomic(markdown, render_markdown(report, relative).encode("utf-8"))
    _write_atomic(page, render_html(report, pngs).encode("utf-8"))
    return WrittenReport(html=page, markdown=markdown, charts=chart_paths)


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


# ---------------------------------------------------------------------------------------------
# Sending


def headline_text(report: Report) -> str:
    """The report's headline in a few plain lines (the webhook's text, the e-mail's top)."""
    rows = {r["metric"]: r for r in report.headline.iter_rows(named=True)}
    lines = [
        f"{_plain(metric)} {_value(rows[metric]['value'], rows[metric]['kind'])} "
        f"({_change(rows[metric])})"
        for metric in ("tasks_total", "success_rate", "exec_time_p95_s", "workflow_completion_rate")
    ]
    red = report.attention.filter(pl.col("health_status") == "red")["agent_id"].unique()
    lines.append(f"agents in red: {red.len()}")
    if report.business is not None:
        on_track = "on track" if report.business["revenue_on_track"] else "behind target"
        lines.append(f"revenue YTD {_value(report.business['revenue_ytd_usd'], 'usd')}: {on_track}")
    return "\n".join(lines)


def _plain(metric: str) -> str:
    return metric.replace("_", " ")


def render_text(report: Report) -> str:
    """The summary as plain text (the e-mail's alternative to HTML)."""
    lines = [report.title, _period_line(report), ""]
    for heading, intro, table, notes in _sections(report):
        lines += [heading, "=" * len(heading), intro]
        lines += [f"- {n}" for n in notes]
        if table is not None and not table.is_empty():
            cells = [table.columns] + [
                [_cell(c, v) for c, v in row.items()] for row in table.iter_rows(named=True)
            ]
            widths = [max(len(r[i]) for r in cells) for i in range(len(table.columns))]
            lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
        lines.append("")
    return "\n".join(lines)


def report_message(report: Report, written: WrittenReport, link: str) -> Message:
    """The report as one message: HTML body, plain-text alternative, the PNGs attached."""
    return Message(
        subject=report.title,
        text=headline_text(report) + "\n\n" + render_text(report),
        html=written.html.read_text(encoding="utf-8"),
        attachments={path.name: path.read_bytes() for path in written.charts.values()},
        link=link,
    )
