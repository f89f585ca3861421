"""The sections of a stakeholder summary, from hand-made mart rows."""

from __future__ import annotations

import statistics
from datetime import date, datetime

import polars as pl
import pytest

from transforms import summaries

D1, D2 = date(2026, 11, 22), date(2026, 11, 23)


def test_periods_and_the_one_before() -> None:
    assert summaries.containing_period("week", date(2026, 11, 25)) == date(2026, 11, 23)
    assert summaries.containing_period("month", date(2026, 11, 25)) == date(2026, 11, 1)
    assert summaries.previous_period("day", date(2026, 1, 1)) == date(2025, 12, 31)
    assert summaries.previous_period("week", date(2026, 11, 23)) == date(2026, 11, 16)
    assert summaries.previous_period("month", date(2026, 3, 1)) == date(2026, 2, 1)


def _system(rows: dict[date, dict[str, float | None]]) -> pl.LazyFrame:
    metrics = [m for m, _ in summaries.HEADLINE]
    return pl.LazyFrame(
        [{"period_start": d, **dict.fromkeys(metrics, 0.0), **values} for d, values in rows.items()]
    )


def test_headline_compares_with_the_period_before() -> None:
    system = _system(
        {
            D1: {"tasks_total": 100, "success_rate": 0.90, "response_time_avg_s": None},
            D2: {"tasks_total": 120, "success_rate": 0.85, "response_time_avg_s": 1.5},
        }
    )
    rows = {r["metric"]: r for r in summaries.headline(system, D2, D1).collect().to_dicts()}
    assert [r for r in rows] == [m for m, _ in summaries.HEADLINE]
    assert rows["tasks_total"]["value"] == 120 and rows["tasks_total"]["change"] == 20
    assert rows["success_rate"]["change"] == pytest.approx(-0.05)
    # Nothing to compare with: no change, not a change from zero.
    assert rows["response_time_avg_s"]["previous"] is None
    assert rows["response_time_avg_s"]["change"] is None


def test_headline_of_a_first_period_has_no_previous_values() -> None:
    rows = summaries.headline(_system({D2: {"tasks_total": 5}}), D2, D1).collect()
    assert rows["previous"].null_count() == rows.height
    assert rows["change"].null_count() == rows.height


def _agents(rows: list[tuple[str, str, float | None, float | None, int]]) -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "period_start": [D2] * len(rows),
            "agent_id": [r[0] for r in rows],
            "department": ["ops"] * len(rows),
            "health_status": [r[1] for r in rows],
            "success_rate": [r[2] for r in rows],
            "response_time_avg_s": [r[3] for r in rows],
            "rank_overall": [r[4] for r in rows],
            "tasks_succeeded": [10] * len(rows),
            "tasks_total": [10] * len(rows),
        },
        schema_overrides={"success_rate": pl.Float64, "response_time_avg_s": pl.Float64},
    )


def test_each_threshold_broken_at_its_boundaries() -> None:
    agents = _agents(
        [
            ("at-red-line", "yellow", 0.80, 1.0, 1),  # 0.80 is not below 0.80: a warning
            ("below-red", "red", 0.7999, 1.0, 2),
            ("at-green", "yellow", 0.95, 2.0, 3),  # 0.95 is green; 2 s is not below 2: warning
            ("at-5s", "yellow", None, 5.0, 4),  # 5 s is not above 5: a warning
            ("above-5s", "red", 0.99, 5.0001, 5),
            ("green", "green", 0.99, 1.0, 6),  # not listed at all
        ]
    )
    broken = summaries.agents_needing_attention(agents, D2, 0.95, 0.80, 2.0, 5.0).collect()
    found = {(r["agent_id"], r["metric"], r["level"], r["threshold"]) for r in broken.to_dicts()}
    assert found == {
        ("at-red-line", "success_rate", "warning", 0.95),
        ("below-red", "success_rate", "critical", 0.80),
        ("at-green", "response_time_avg_s", "warning", 2.0),
        ("at-5s", "response_time_avg_s", "warning", 2.0),
        ("above-5s", "response_time_avg_s", "critical", 5.0),
    }
    assert broken["health_status"].head(2).to_list() == ["red", "red"]  # red first


def test_rankings_top_and_bottom_among_agents_with_tasks() -> None:
    agents = _agents([(f"a{i}", "green", 0.99, 1.0, i) for i in range(1, 6)])
    idle = _agents([("idle", "unknown", None, None, 6)]).with_columns(
        tasks_total=pl.lit(0, dtype=pl.Int64)
    )
    both = pl.concat([agents, idle])
    assert summaries.top_agents(both, D2, 2).collect()["agent_id"].to_list() == ["a1", "a2"]
    assert summaries.bottom_agents(both, D2, 2).collect()["agent_id"].to_list() == ["a5", "a4"]


def _departments(
    department: str, success: list[float | None], revenue: list[float]
) -> pl.DataFrame:
    starts = [date(2026, 11, d) for d in range(1, len(success) + 1)]
    figures = {f: [0.0] * len(success) for f in summaries.BUSINESS_FIGURES}
    figures["revenue_usd"] = revenue
    return pl.DataFrame(
        {"department": [department] * len(success), "period_start": starts,
         "success_rate": success, **figures},
        schema_overrides={"success_rate": pl.Float64},
    )  # fmt: skip


def test_business_impact_correlates_success_with_each_figure() -> None:
    success, revenue = [0.90, 0.80, 0.95, 0.85, 0.70], [100.0, 80.0, 130.0, 90.0, 75.0]
    frame = _departments("finance", success, revenue)
    starts = frame["period_start"].to_list()
    rows = summaries.business_impact(frame.lazy(), starts).collect()
    # Only the figure that moves; the others are zero throughout.
    assert rows["figure"].to_list() == ["revenue_usd"]
    row = rows.row(0, named=True)
    assert row["points"] == 5
    assert row["correlation"] == pytest.approx(statistics.correlation(success, revenue))
    r = round(statistics.correlation(success, revenue), 2)
    assert r >= 0.7
    assert row["reading"] == f"strong positive (r = {r}, 5 periods)"


def test_business_impact_says_when_it_cannot_say() -> None:
    few = _departments("a", [0.9, 0.8, None, 0.7], [1.0, 2.0, 3.0, 4.0])  # 3 known points
    flat = _departments("b", [0.9, 0.9, 0.9, 0.9], [1.0, 2.0, 3.0, 4.0])
    frame = pl.concat([few, flat])
    rows = summaries.business_impact(frame.lazy(), frame["period_start"].unique().to_list())
    found = {r["department"]: r for r in rows.collect().to_dicts()}
    assert found["a"]["points"] == 3 and found["a"]["correlation"] is None
    assert found["a"]["reading"] == "too few periods to say (3 of 4 needed)"
    assert found["b"]["correlation"] is None
    assert found["b"]["reading"] == "no variation to correlate"


def test_a_source_is_late_past_its_limit_and_when_it_has_nothing() -> None:
    as_of = datetime(2026, 11, 24, 12, 0)
    freshness = pl.LazyFrame(
        {
            "source": ["on_time", "at_limit", "late", "empty", "no_limit"],
            "newest_at": [
                datetime(2026, 11, 24, 11, 0),
                datetime(2026, 11, 24, 10, 0),
                datetime(2026, 11, 24, 9, 59, 59),
                None,
                datetime(2020, 1, 1),
            ],
        },
        schema_overrides={"newest_at": pl.Datetime("us")},
    )
    limits = dict.fromkeys(["on_time", "at_limit", "late", "empty"], 7200.0)
    rows = summaries.late_sources(freshness, pl.lit(as_of), limits).collect()
    late = dict(zip(rows["source"], rows["is_late"], strict=True))
    assert late == {
        "at_limit": False,
        "empty": True,
        "late": True,
        "no_limit": False,
        "on_time": False,
    }
    assert rows.filter(pl.col("source") == "late")["age_s"][0] == 7201.0
