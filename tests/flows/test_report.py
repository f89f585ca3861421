"""Stakeholder summaries: built from the marts alone, their numbers the marts' numbers, written
under stable names, every value from data escaped, and the HTML rendered by a real Chromium."""

from __future__ import annotations

import dataclasses
import os
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from flows import cli
from flows.report import (
    Report,
    ReportError,
    build_report,
    render_charts,
    render_html,
    render_markdown,
    write_report,
)
from transforms.summaries import HEADLINE

PNG = b"\x89PNG\r\n\x1a\n"
CHROMIUM = Path("/usr/bin/chromium")


def _marts(warehouse: Path, sql: str, params: list) -> pl.DataFrame:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql, params).pl()
    finally:
        con.close()


@pytest.fixture(scope="module")
def warehouse(flawed_run) -> Path:  # type: ignore[no-untyped-def]
    settings, _ = flawed_run
    return settings.warehouse


@pytest.mark.parametrize("period", ["day", "week", "month"])
def test_headline_figures_are_the_system_marts(warehouse: Path, period: str) -> None:
    report = build_report(warehouse, period)
    rows = _marts(
        warehouse,
        "SELECT * FROM marts.system_kpis WHERE period = ? ORDER BY period_start DESC",
        [period],
    )
    ours = rows.filter(pl.col("period_start") == report.start).row(0, named=True)
    before = rows.filter(pl.col("period_start") < report.start).head(1)
    for row in report.headline.iter_rows(named=True):
        expected = ours[row["metric"]]
        assert row["value"] == (None if expected is None else pytest.approx(expected))
        if before.height and row["previous"] is not None:
            assert row["previous"] == pytest.approx(before[row["metric"]][0])
    assert report.headline.height == len(HEADLINE)


def test_the_latest_complete_period_is_the_default(warehouse: Path) -> None:
    complete = _marts(
        warehouse,
        "SELECT max(period_start) FROM marts.agent_kpis WHERE period = 'day' AND is_complete",
        [],
    )[0, 0]
    report = build_report(warehouse, "day")
    assert report.start == complete and report.is_complete
    assert build_report(warehouse, "day", complete + timedelta(hours=5)).start == complete


def test_departments_agents_and_business_are_the_marts(warehouse: Path) -> None:
    report = build_report(warehouse, "week")
    departments = _marts(
        warehouse,
        "SELECT department, success_rate, tasks_total, health_status FROM marts.department_kpis "
        "WHERE period = 'week' AND period_start = ? ORDER BY rank_success, department",
        [report.start],
    )
    assert report.departments.select(departments.columns).equals(departments)
    top = _marts(
        warehouse,
        "SELECT agent_id FROM marts.agent_kpis WHERE period = 'week' AND period_start = ? "
        "AND tasks_total > 0 ORDER BY rank_overall, agent_id LIMIT 5",
        [report.start],
    )
    assert report.top_agents["agent_id"].to_list() == top["agent_id"].to_list()
    business = _marts(
        warehouse,
        "SELECT * FROM marts.business_value WHERE date = ?",
        [report.business["date"] if report.business else None],
    )
    assert report.business == business.row(0, named=True)
    last_day = min(report.end - timedelta(days=1), report.as_of.date())  # type: ignore[union-attr]
    assert report.business["date"] == last_day  # type: ignore[index]


def test_the_written_files_have_stable_names_and_carry_the_numbers(
    warehouse: Path, tmp_path: Path
) -> None:
    report = build_report(warehouse, "week")
    written = write_report(report, tmp_path)
    year, week, _ = report.start.isocalendar()
    assert written.html == tmp_path / "weekly" / f"{year}-W{week:02d}.html"
    assert written.markdown == written.html.with_suffix(".md")
    assert set(written.charts) == {
        "success_by_department",
        "execution_times",
        "revenue_against_target",
        "department_comparison",
    }
    assert all(p.read_bytes().startswith(PNG) for p in written.charts.values())
    tasks = int(report.headline.filter(pl.col("metric") == "tasks_total")["value"][0])
    for text in (written.html.read_text(), written.markdown.read_text()):
        assert f"{tasks:,}" in text
        assert report.top_agents["agent_id"][0] in text.replace("\\", "")
    markdown = written.markdown.read_text()
    assert all(f"({written.html.stem}/{name}.png)" in markdown for name in written.charts)


def test_a_period_the_marts_do_not_have_is_a_clear_error(warehouse: Path) -> None:
    with pytest.raises(ReportError, match="no day starting 2001-01-01"):
        build_report(warehouse, "day", date(2001, 1, 1))


def _with_markup(report: Report) -> Report:
    markup = "<script>alert('x')</script>"
    return dataclasses.replace(
        report,
        top_agents=report.top_agents.with_columns(pl.lit(markup).alias("agent_id")),
        workflows=report.workflows.with_columns(
            pl.lit("<img src=x onerror=alert(1)>|**bold**").alias("workflow_name")
        ),
    )


def test_every_value_from_data_is_escaped(warehouse: Path) -> None:
    report = _with_markup(build_report(warehouse, "day"))
    page = render_html(report, {})
    assert "<script" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    markdown = render_markdown(report)
    assert "<script" not in markdown and "<img" not in markdown
    assert "&lt;script&gt;" in markdown
    assert "\\|\\*\\*bold\\*\\*" in markdown  # no cell break, no emphasis


def test_report_command_writes_the_summary_and_fails_in_one_line(
    warehouse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["report", "--period", "month", "--warehouse", str(warehouse), "--out", str(tmp_path)]
    assert cli.main(args) == 0
    assert list((tmp_path / "monthly").glob("*.html"))
    assert cli.main([*args, "--date", "2001-01-01"]) == 1
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_chromium_renders_the_page_with_every_chart(warehouse: Path, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed here (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    report = _with_markup(build_report(warehouse, "week"))
    page_file = tmp_path / "report.html"
    page_file.write_text(render_html(report, render_charts(report)))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page()
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.goto(page_file.as_uri())
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.id, e.complete, e.naturalWidth, e.naturalHeight])"
            )
            headings = page.eval_on_selector_all("h2", "els => els.map(e => e.textContent)")
            shot = page.screenshot(full_page=True)
        finally:
            browser.close()
    assert sorted(i[0] for i in images) == sorted(render_charts(report))
    assert all(complete and width > 300 and height > 100 for _, complete, width, height in images)
    assert "Business impact" in headings and "Data quality" in headings
    assert dialogs == []  # the markup in the data did not run
    assert shot.startswith(PNG)
