"""Periods (`contract/kpis.md`, Conventions): `day` is the UTC date, `week` the ISO week starting
Monday, `month` the calendar month; `period_start` is the first date of the period and
`period_end` the first date after it.

Calendar facts used below: 2026-11-23 is a Monday; 2026-12-31 a Thursday; 2027-01-01 a Friday;
2028 is a leap year.
"""

from datetime import date, datetime

import polars as pl
import pytest

from transforms.periods import assign_periods, period_end, period_start, periods_overlapping


def _start(moment: date | datetime, period: str) -> date:
    return pl.select(period_start(pl.lit(moment), period).alias("s"))["s"][0]


def _end(start: date, period: str) -> date:
    return pl.select(period_end(pl.lit(start), period).alias("e"))["e"][0]


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 11, 23, 0, 0, 0), date(2026, 11, 23)),
        (datetime(2026, 11, 23, 23, 59, 59, 999_999), date(2026, 11, 23)),
        (date(2026, 11, 23), date(2026, 11, 23)),
    ],
)
def test_day_is_the_utc_date(moment: date | datetime, expected: date) -> None:
    assert _start(moment, "day") == expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        # a Monday starts its own week
        (datetime(2026, 11, 23, 0, 0, 0), date(2026, 11, 23)),
        # the Sunday at its last microsecond still belongs to the week of the Monday before
        (datetime(2026, 11, 29, 23, 59, 59, 999_999), date(2026, 11, 23)),
        (date(2026, 11, 26), date(2026, 11, 23)),
    ],
)
def test_week_starts_on_monday(moment: date | datetime, expected: date) -> None:
    assert _start(moment, "week") == expected


def test_week_spanning_a_month_boundary_starts_in_the_earlier_month() -> None:
    # Mon 30 Nov 2026 .. Sun 6 Dec 2026: Thursday 3 December is in the week of 30 November.
    assert _start(date(2026, 12, 3), "week") == date(2026, 11, 30)
    assert _end(date(2026, 11, 30), "week") == date(2026, 12, 7)


def test_week_spanning_a_year_boundary_starts_in_the_earlier_year() -> None:
    # Mon 28 Dec 2026 .. Sun 3 Jan 2027 (ISO week 53 of 2026).
    assert _start(datetime(2027, 1, 1, 12, 0, 0), "week") == date(2026, 12, 28)
    assert _start(date(2027, 1, 3), "week") == date(2026, 12, 28)
    assert _start(date(2027, 1, 4), "week") == date(2027, 1, 4)
    assert _end(date(2026, 12, 28), "week") == date(2027, 1, 4)
    # 1 Jan 2026 was a Thursday: its week started on Monday 29 Dec 2025.
    assert _start(date(2026, 1, 1), "week") == date(2025, 12, 29)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 11, 30, 23, 59, 59), date(2026, 11, 1)),
        (date(2026, 12, 1), date(2026, 12, 1)),
        (date(2028, 2, 29), date(2028, 2, 1)),
    ],
)
def test_month_is_the_calendar_month(moment: date | datetime, expected: date) -> None:
    assert _start(moment, "month") == expected


@pytest.mark.parametrize(
    ("start", "period", "expected"),
    [
        (date(2026, 11, 23), "day", date(2026, 11, 24)),
        (date(2026, 12, 31), "day", date(2027, 1, 1)),
        (date(2028, 2, 28), "day", date(2028, 2, 29)),
        (date(2026, 11, 23), "week", date(2026, 11, 30)),
        (date(2026, 1, 1), "month", date(2026, 2, 1)),
        (date(2026, 2, 1), "month", date(2026, 3, 1)),
        (date(2028, 2, 1), "month", date(2028, 3, 1)),
        (date(2026, 11, 1), "month", date(2026, 12, 1)),
        (date(2026, 12, 1), "month", date(2027, 1, 1)),
    ],
)
def test_period_end_is_the_first_date_after_the_period(
    start: date, period: str, expected: date
) -> None:
    assert _end(start, period) == expected


def test_periods_overlapping_a_range_across_a_week_and_a_month_boundary() -> None:
    # Sun 29 Nov .. Tue 1 Dec 2026: three days, the weeks of Mon 23 and Mon 30 November, and
    # the months November and December.
    periods = periods_overlapping(date(2026, 11, 29), date(2026, 12, 1))
    assert periods.rows() == [
        ("day", date(2026, 11, 29), date(2026, 11, 30)),
        ("day", date(2026, 11, 30), date(2026, 12, 1)),
        ("day", date(2026, 12, 1), date(2026, 12, 2)),
        ("month", date(2026, 11, 1), date(2026, 12, 1)),
        ("month", date(2026, 12, 1), date(2027, 1, 1)),
        ("week", date(2026, 11, 23), date(2026, 11, 30)),
        ("week", date(2026, 11, 30), date(2026, 12, 7)),
    ]
    assert periods.columns == ["period", "period_start", "period_end"]


def test_periods_overlapping_a_single_day() -> None:
    periods = periods_overlapping(date(2027, 1, 1), date(2027, 1, 1))
    assert periods.rows() == [
        ("day", date(2027, 1, 1), date(2027, 1, 2)),
        ("month", date(2027, 1, 1), date(2027, 2, 1)),
        ("week", date(2026, 12, 28), date(2027, 1, 4)),
    ]


def test_periods_overlapping_only_the_kinds_asked_for() -> None:
    periods = periods_overlapping(date(2026, 11, 1), date(2026, 11, 30), kinds=("week",))
    # Sun 1 Nov is in the week of Mon 26 Oct; Mon 30 Nov starts the last week.
    assert periods["period_start"].to_list() == [
        date(2026, 10, 26),
        date(2026, 11, 2),
        date(2026, 11, 9),
        date(2026, 11, 16),
        date(2026, 11, 23),
        date(2026, 11, 30),
    ]
    assert set(periods["period"]) == {"week"}


def test_assign_periods_puts_a_row_in_its_day_week_and_month() -> None:
    frame = pl.LazyFrame(
        {"id": [1, 2], "at": [datetime(2026, 11, 29, 23, 59, 59), datetime(2026, 11, 30, 0, 0)]}
    )
    periods = periods_overlapping(date(2026, 11, 29), date(2026, 11, 30)).lazy()
    assigned = assign_periods(frame, "at", periods).collect().sort("id", "period")
    assert assigned.select("id", "period", "period_start", "period_end").rows() == [
        (1, "day", date(2026, 11, 29), date(2026, 11, 30)),
        (1, "month", date(2026, 11, 1), date(2026, 12, 1)),
        (1, "week", date(2026, 11, 23), date(2026, 11, 30)),
        (2, "day", date(2026, 11, 30), date(2026, 12, 1)),
        (2, "month", date(2026, 11, 1), date(2026, 12, 1)),
        (2, "week", date(2026, 11, 30), date(2026, 12, 7)),
    ]


def test_assign_periods_drops_rows_without_moment_or_outside_the_requested_periods() -> None:
    frame = pl.LazyFrame(
        {"id": [1, 2, 3], "at": [datetime(2026, 11, 23, 10, 0), None, datetime(2026, 11, 24, 1)]},
        schema={"id": pl.Int64, "at": pl.Datetime("us")},
    )
    only_day_23 = periods_overlapping(date(2026, 11, 23), date(2026, 11, 23), kinds=("day",))
    assigned = assign_periods(frame, "at", only_day_23.lazy()).collect()
    assert assigned.select("id", "period", "period_start").rows() == [
        (1, "day", date(2026, 11, 23))
    ]


def test_assign_periods_places_rows_in_requested_periods_apart_and_of_other_kinds() -> None:
    # Days 2 and 5 are requested, not 3 and 4 between them; the month, not the weeks. Rows
    # at the first instant of a requested period and the last, by Datetime and by Date.
    moments = [
        datetime(2026, 11, 2),
        datetime(2026, 11, 3, 9),
        datetime(2026, 11, 4, 9),
        datetime(2026, 11, 5, 23, 59, 59, 999_999),
        datetime(2026, 11, 6),
        datetime(2026, 10, 31, 23, 59, 59),
        datetime(2026, 11, 1),
        datetime(2026, 11, 30, 23, 59, 59, 999_999),
        datetime(2026, 12, 1),
    ]
    days = periods_overlapping(date(2026, 11, 2), date(2026, 11, 2), kinds=("day",))
    other_day = periods_overlapping(date(2026, 11, 5), date(2026, 11, 5), kinds=("day",))
    month = periods_overlapping(date(2026, 11, 9), date(2026, 11, 9), kinds=("month",))
    periods = pl.concat([days, other_day, month]).lazy()
    november = date(2026, 11, 1)
    expected = [
        (0, "day", date(2026, 11, 2)),
        (0, "month", november),
        (1, "month", november),
        (2, "month", november),
        (3, "day", date(2026, 11, 5)),
        (3, "month", november),
        (4, "month", november),
        (6, "month", november),
        (7, "month", november),
    ]
    for dtype in (pl.Datetime("us"), pl.Date):
        frame = pl.LazyFrame({"id": range(len(moments)), "at": moments}).with_columns(
            pl.col("at").cast(dtype)
        )
        assigned = assign_periods(frame, "at", periods).collect().sort("id", "period")
        assert assigned.select("id", "period", "period_start").rows() == expected, dtype


def test_assign_periods_with_no_period_requested_places_nothing() -> None:
    frame = pl.LazyFrame({"id": [1], "at": [datetime(2026, 11, 2)]})
    none = periods_overlapping(date(2026, 11, 2), date(2026, 11, 2)).clear().lazy()
    assigned = assign_periods(frame, "at", none).collect()
    assert assigned.is_empty()
    assert {"id", "at", "period", "period_start", "period_end"} <= set(assigned.columns)
