"""Periods: `day` (UTC date), `week` (ISO week, from Monday) and `month` (calendar month).

`period_start` is the first date of the period and `period_end` the first date after it, as
`contract/kpis.md` defines them. Marts are computed for an explicit list of periods, which is
what makes a run partitionable (a day, a week, a month at a time) and incremental (only the
periods new data touches).
"""

from __future__ import annotations

from datetime import date

import polars as pl

PERIODS = ("day", "week", "month")
_EVERY = {"day": "1d", "week": "1w", "month": "1mo"}

PERIOD_KEYS = ["period", "period_start"]
# The period as an enumeration: grouping and joining on it is cheaper than on its text.
PERIOD_TYPE = pl.Enum(PERIODS)


def period_start(moment: pl.Expr, period: str) -> pl.Expr:
    """The first date of the `period` that contains `moment` (a Date or Datetime)."""
    return moment.dt.truncate(_EVERY[period]).cast(pl.Date)


def period_end(start: pl.Expr, period: str) -> pl.Expr:
    """The first date after the `period` that starts on `start`."""
    return start.dt.offset_by(_EVERY[period])


def periods_overlapping(first: date, last: date, kinds: tuple[str, ...] = PERIODS) -> pl.DataFrame:
    """Every period of the given kinds that overlaps the dates `[first, last]`.

    One row per (period, period_start), with `period_end`; sorted.
    """
    return periods_containing(pl.date_range(first, last, "1d", eager=True), kinds)


def with_period_end(periods: pl.DataFrame) -> pl.DataFrame:
    """Add `period_end` to a frame of (period, period_start)."""
    return periods.with_columns(
        pl.when(pl.col("period") == kind)
        .then(period_end(pl.col("period_start"), kind))
        .alias(f"_end_{kind}")
        for kind in PERIODS
    ).select(
        "period",
        "period_start",
        pl.coalesce(f"_end_{kind}" for kind in PERIODS).alias("period_end"),
    )


def assign_periods(frame: pl.LazyFrame, moment: str, periods: pl.LazyFrame) -> pl.LazyFrame:
    """Each row of `frame` once for each requested period that contains its `moment` column.

    `periods` holds the requested (period, period_start, period_end); rows whose moment is NULL
    or in no requested period drop out. The result carries period, period_start, period_end.

    For each kind of period, only the rows between its first requested start and its last
    end are placed (and then matched with the requested periods): an hourly run asks for a
    day, its week and its month, and its facts are the month's, which would otherwise all be
    placed in a day and a week first, to be dropped by the match.
    """
    # The period column has the type the requested periods give it (text, or PERIOD_TYPE).
    period_type = periods.collect_schema()["period"]
    moment_type = frame.collect_schema()[moment]
    spans = (
        periods.group_by("period")
        .agg(pl.col("period_start").min().alias("first"), pl.col("period_end").max().alias("end"))
        .collect()
    )
    bounds = {str(kind): (first, end) for kind, first, end in spans.iter_rows()}
    per_kind = [
        frame.filter(
            pl.col(moment) >= pl.lit(bounds[kind][0]).cast(moment_type),
            pl.col(moment) < pl.lit(bounds[kind][1]).cast(moment_type),
        ).with_columns(
            pl.lit(kind).cast(period_type).alias("period"),
            period_start(pl.col(moment), kind).alias("period_start"),
        )
        for kind in PERIODS
        if kind in bounds
    ]
    if not per_kind:  # no period requested: no row, with the columns of one
        per_kind = [
            frame.filter(False).with_columns(
                pl.lit(None).cast(period_type).alias("period"),
                pl.lit(None).cast(pl.Date).alias("period_start"),
            )
        ]
    return pl.concat(per_kind).join(periods, on=PERIOD_KEYS, how="inner")


def periods_containing(days: pl.Series, kinds: tuple[str, ...] = PERIODS) -> pl.DataFrame:
    """Every period of the given kinds that contains one of `days` (dates).

    One row per (period, period_start), with `period_end`; sorted. An incremental run
    recomputes these periods for the days its new data touches.
    """
    frame = pl.DataFrame({"day": days.cast(pl.Date)}).drop_nulls().unique()
    frames = [
        frame.select(
            pl.lit(kind).alias("period"),
            period_start(pl.col("day"), kind).alias("period_start"),
        ).unique()
        for kind in kinds
    ]
    return with_period_end(pl.concat(frames)).sort(PERIOD_KEYS)


def days_touched(frame: pl.LazyFrame, moments: list[str], reach_s: float = 0.0) -> pl.LazyFrame:
    """The UTC dates a frame's rows fall on, by any of its `moments` columns (Datetime):
    one column `day`, unique. With `reach_s`, also the date `reach_s` seconds after each
    moment (a heartbeat covers the interval after it, into the next day)."""
    days = [frame.select(pl.col(m).dt.date().alias("day")) for m in moments]
    if reach_s:
        reach = pl.duration(microseconds=int(reach_s * 1_000_000))
        days += [frame.select((pl.col(m) + reach).dt.date().alias("day")) for m in moments]
    return pl.concat(days).drop_nulls().unique()
