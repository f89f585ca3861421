"""Staging: the source contract's text formats parsed into typed values.

Every expectation is worked out by hand from `contract/sources.md` ("All times are UTC. A
timestamp is ISO-8601 text ... A value with an offset is converted to UTC").
"""

from datetime import date, datetime

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from transforms.staging import (
    parse_date,
    parse_float,
    parse_int,
    parse_participants,
    parse_timestamp,
    stage_business_metrics,
    stage_tasks,
    stage_workflows,
    with_timestamps,
)


def _parse(parser, texts: list[str | None]) -> list[object]:  # type: ignore[no-untyped-def]
    frame = pl.DataFrame({"text": texts}, schema={"text": pl.String})
    values = frame.select(parser(pl.col("text")).alias("value"))["value"].to_list()
    if parser is parse_timestamp:  # the staging functions' faster route must agree
        fast = with_timestamps(frame.lazy(), {"value": "text"}).collect()["value"].to_list()
        assert fast == values
    return values


def _one(parser, text: str | None) -> object:  # type: ignore[no-untyped-def]
    return _parse(parser, [text])[0]


# ---------------------------------------------------------------------------------------------
# Timestamps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23 14:05:09", datetime(2026, 11, 23, 14, 5, 9)),
        ("2026-11-23T14:05:09", datetime(2026, 11, 23, 14, 5, 9)),
        ("2026-01-01 00:00:00", datetime(2026, 1, 1, 0, 0, 0)),
        ("2028-02-29 23:59:59", datetime(2028, 2, 29, 23, 59, 59)),
    ],
)
def test_timestamp_without_offset_is_already_utc(text: str, expected: datetime) -> None:
    assert _one(parse_timestamp, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # .120 s = 120 000 µs
        ("2026-11-23 14:05:00.120", datetime(2026, 11, 23, 14, 5, 0, 120_000)),
        ("2026-11-23T14:05:00.5", datetime(2026, 11, 23, 14, 5, 0, 500_000)),
        ("2026-11-23T14:05:00.123456", datetime(2026, 11, 23, 14, 5, 0, 123_456)),
        # stored in microseconds (docs/design.md): digits beyond the sixth are dropped
        ("2026-11-23T14:05:00.123456789Z", datetime(2026, 11, 23, 14, 5, 0, 123_456)),
    ],
)
def test_timestamp_with_fractional_seconds(text: str, expected: datetime) -> None:
    assert _one(parse_timestamp, text) == expected


def test_timestamp_with_z_is_utc() -> None:
    assert _parse(
        parse_timestamp,
        ["2026-11-23T14:05:09Z", "2026-11-23T14:05:00.120Z", "2026-11-23 14:05:09Z"],
    ) == [
        datetime(2026, 11, 23, 14, 5, 9),
        datetime(2026, 11, 23, 14, 5, 0, 120_000),
        datetime(2026, 11, 23, 14, 5, 9),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # +00:00 is UTC itself
        ("2026-11-23T14:05:03+00:00", datetime(2026, 11, 23, 14, 5, 3)),
        # 14:05:09 at UTC+2 is 12:05:09 UTC
        ("2026-11-23T14:05:09+02:00", datetime(2026, 11, 23, 12, 5, 9)),
        ("2026-11-23 14:05:09+02:00", datetime(2026, 11, 23, 12, 5, 9)),
        # 14:05:09.5 at UTC+5:30 is 08:35:09.5 UTC
        ("2026-11-23T14:05:09.5+05:30", datetime(2026, 11, 23, 8, 35, 9, 500_000)),
        # 10:00 at UTC-1:30 is 11:30 UTC
        ("2026-11-23T10:00:00-01:30", datetime(2026, 11, 23, 11, 30, 0)),
    ],
)
def test_timestamp_with_offset_is_converted_to_utc(text: str, expected: datetime) -> None:
    assert _one(parse_timestamp, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # 01:00 at UTC+2 is 23:00 UTC on the day before
        ("2026-11-24T01:00:00+02:00", datetime(2026, 11, 23, 23, 0, 0)),
        # 23:30 at UTC-1:30 is 01:00 UTC on the next day
        ("2026-11-23T23:30:00-01:30", datetime(2026, 11, 24, 1, 0, 0)),
        # 23:30 on 31 December at UTC-1 is 00:30 UTC on 1 January of the next year
        ("2026-12-31T23:30:00-01:00", datetime(2027, 1, 1, 0, 30, 0)),
        # 00:15 on 1 March 2028 at UTC+1 is 23:15 UTC on 29 February (a leap year)
        ("2028-03-01T00:15:00+01:00", datetime(2028, 2, 29, 23, 15, 0)),
    ],
)
def test_timestamp_offset_conversion_crosses_midnight(text: str, expected: datetime) -> None:
    assert _one(parse_timestamp, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # PostgreSQL prints `+HH` and `+HHMM`
        ("2026-11-23 14:05:09+02", datetime(2026, 11, 23, 12, 5, 9)),
        ("2026-11-23 14:05:09-03", datetime(2026, 11, 23, 17, 5, 9)),
        ("2026-11-23 14:05:09+0200", datetime(2026, 11, 23, 12, 5, 9)),
    ],
)
def test_timestamp_with_short_offsets(text: str, expected: datetime) -> None:
    assert _one(parse_timestamp, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "not a timestamp",
        "",
        "2026-13-01 00:00:00",  # month 13
        "2026-02-30 10:00:00",  # no 30 February
        "2027-02-29 10:00:00",  # 2027 is not a leap year
        "2026-11-23 25:00:00",  # hour 25
        "2026-11-23 14:61:00",  # minute 61
        "23/11/2026 14:05:09",
        "2026-11-23 14:05:09 garbage",
        "14:05:09",
    ],
)
def test_invalid_timestamp_is_null(text: str) -> None:
    assert _one(parse_timestamp, text) is None


def test_null_timestamp_stays_null() -> None:
    assert _one(parse_timestamp, None) is None


_DIGIT = st.sampled_from("0123456789")
_PIECE = st.one_of(
    st.text(_DIGIT, min_size=1, max_size=4),
    st.sampled_from(["-", ":", " ", "T", ".", "Z", "+", "x", "\u00e9"]),
)
_ZONE = st.one_of(
    st.sampled_from(["", "Z", "z", "+00:00", "-00:00"]),
    st.builds(
        "{}{:02d}{}{:02d}".format,
        st.sampled_from("+-"),
        st.integers(0, 25),
        st.sampled_from([":", ""]),
        st.integers(0, 61),
    ),
    st.builds("{}{:02d}".format, st.sampled_from("+-"), st.integers(0, 25)),
)
_TIMESTAMP_LIKE = st.builds(
    "{:04d}-{:02d}-{:02d}{}{:02d}:{:02d}:{:02d}{}{}{}".format,
    st.integers(0, 9999),
    st.integers(0, 13),
    st.integers(0, 32),
    st.sampled_from([" ", "T", "t", "  "]),
    st.integers(0, 25),
    st.integers(0, 61),
    st.integers(0, 61),
    st.one_of(st.just(""), st.text(_DIGIT, max_size=11).map(".{}".format)),
    _ZONE,
    st.one_of(st.just(""), _PIECE),
)


@given(st.lists(st.one_of(_TIMESTAMP_LIKE, st.lists(_PIECE, max_size=12).map("".join), st.none())))
def test_fast_timestamp_route_equals_the_general_parser(texts: list[str | None]) -> None:
    frame = pl.DataFrame({"text": texts}, schema={"text": pl.String})
    general = frame.select(parse_timestamp(pl.col("text")).alias("value"))["value"]
    fast = with_timestamps(frame.lazy(), {"value": "text"}).collect()["value"]
    assert fast.equals(general), list(
        zip(texts, general.cast(pl.String), fast.cast(pl.String), strict=True)
    )


def test_timestamp_parse_is_per_value_in_a_mixed_column() -> None:
    # One bad value does not spoil the others, whatever their formats.
    assert _parse(
        parse_timestamp,
        ["2026-11-23T14:05:09Z", "garbage", "2026-11-23 16:05:09+02:00", None],
    ) == [datetime(2026, 11, 23, 14, 5, 9), None, datetime(2026, 11, 23, 14, 5, 9), None]


# ---------------------------------------------------------------------------------------------
# Dates


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23", date(2026, 11, 23)),
        ("2028-02-29", date(2028, 2, 29)),
        # SQLite can hand a DATE column back with a time part: the date is taken.
        ("2026-11-23 00:00:00", date(2026, 11, 23)),
    ],
)
def test_date_parses(text: str, expected: date) -> None:
    assert _one(parse_date, text) == expected


@pytest.mark.parametrize(
    "text", ["2027-02-29", "2026-02-30", "2026-13-01", "23/11/2026", "abc", ""]
)
def test_invalid_date_is_null(text: str) -> None:
    assert _one(parse_date, text) is None


# ---------------------------------------------------------------------------------------------
# Numbers


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1.5", 1.5), ("0", 0.0), ("100", 100.0), ("-3.25", -3.25), ("1e3", 1000.0)],
)
def test_float_parses(text: str, expected: float) -> None:
    assert _one(parse_float, text) == expected


@pytest.mark.parametrize(
    "text", ["NaN", "nan", "inf", "-inf", "Infinity", "abc", "", "1.5.2", "12 apples"]
)
def test_non_finite_or_non_numeric_float_is_null(text: str) -> None:
    assert _one(parse_float, text) is None


@pytest.mark.parametrize(("text", "expected"), [("3", 3), ("0", 0), ("-2", -2)])
def test_int_parses(text: str, expected: int) -> None:
    assert _one(parse_int, text) == expected


@pytest.mark.parametrize("text", ["1.5", "abc", "", "NaN", "3 tasks"])
def test_non_integer_int_is_null(text: str) -> None:
    assert _one(parse_int, text) is None


# ---------------------------------------------------------------------------------------------
# participant_agent_ids


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('["a", "b"]', ["a", "b"]),
        # distinct, in order of first appearance
        ('["b", "a", "b", "a", "c"]', ["b", "a", "c"]),
        ('["a","a"]', ["a"]),
        ("[]", []),
        ('  [ "a" , "b" ]  ', ["a", "b"]),
        # JSON string escapes are decoded
        ('["a\\"b", "\\u0063"]', ['a"b', "c"]),
    ],
)
def test_participants_json_array_of_strings(text: str, expected: list[str]) -> None:
    assert _one(parse_participants, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',  # an object
        '"a"',  # a bare string
        "a,b",  # not JSON
        "[1, 2]",  # numbers
        '["a", 1]',  # a number among strings
        '["a", null]',  # null is not a string
        '[["a"]]',  # nested array
        '["a", true]',
        '["a",]',  # trailing comma: not JSON
        '["a" "b"]',  # missing comma: not JSON
        "",
        "null",
    ],
)
def test_participants_not_an_array_of_strings_is_null(text: str) -> None:
    assert _one(parse_participants, text) is None


@pytest.mark.parametrize(
    "text",
    [
        '["a\\x"]',  # `\x` is no JSON escape
        '["a\\u00"]',  # a truncated `\u` escape
        '["a\tb"]',  # a raw control character inside a string (JSON wants it escaped)
        '["a\nb"]',
    ],
)
def test_participants_invalid_json_string_is_null_and_does_not_fail_the_batch(text: str) -> None:
    # Such text is not JSON at all, so the row is bad input (NULL here); one such row must not
    # make the parse of the whole batch fail and take the valid rows down with it.
    assert _parse(parse_participants, [text, '["a"]']) == [None, ["a"]]


def test_participants_null_stays_null() -> None:
    assert _one(parse_participants, None) is None


# ---------------------------------------------------------------------------------------------
# The stage_* functions: typed columns beside the raw ones


def test_stage_tasks_adds_typed_columns_and_keeps_raw_ones() -> None:
    raw = pl.LazyFrame(
        {
            "id": ["7"],
            "agent_id": ["a1"],
            "execution_time": ["2.5"],
            "success_rate": ["50"],
            "timestamp": ["2026-11-23T14:05:09+01:00"],
        }
    )
    staged = stage_tasks(raw).collect().row(0, named=True)
    assert staged["task_id"] == 7
    assert staged["execution_time_s"] == 2.5
    assert staged["success_pct"] == 50.0
    assert staged["completed_at"] == datetime(2026, 11, 23, 13, 5, 9)
    assert staged["timestamp"] == "2026-11-23T14:05:09+01:00"


def test_stage_workflows_parses_participants_and_counts() -> None:
    raw = pl.LazyFrame(
        {
            "participant_agent_ids": ['["a1", "a2", "a1"]'],
            "started_at": ["2026-11-23 10:00:00"],
            "completed_at": [None],
            "updated_at": ["2026-11-23 10:05:00Z"],
            "errors": ["3"],
            "errors_recovered": ["2"],
        },
        schema={
            c: pl.String
            for c in (
                "participant_agent_ids",
                "started_at",
                "completed_at",
                "updated_at",
                "errors",
                "errors_recovered",
            )
        },
    )
    staged = stage_workflows(raw).collect().row(0, named=True)
    assert staged["participants"] == ["a1", "a2"]
    assert staged["started_at_utc"] == datetime(2026, 11, 23, 10, 0, 0)
    assert staged["completed_at_utc"] is None
    assert staged["updated_at_utc"] == datetime(2026, 11, 23, 10, 5, 0)
    assert (staged["errors_count"], staged["errors_recovered_count"]) == (3, 2)


def test_stage_business_metrics_parses_date_and_value() -> None:
    raw = pl.LazyFrame(
        {
            "id": ["4"],
            "metric_date": ["2026-11-23"],
            "value": ["1250.75"],
            "recorded_at": ["2026-11-24 01:00:00"],
        }
    )
    staged = stage_business_metrics(raw).collect().row(0, named=True)
    assert staged["metric_row_id"] == 4
    assert staged["metric_day"] == date(2026, 11, 23)
    assert staged["metric_value"] == 1250.75
    assert staged["recorded_at_utc"] == datetime(2026, 11, 24, 1, 0, 0)
