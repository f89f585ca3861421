"""Compare two versions of a mart: same keys, same columns, floats equal to a tolerance;
read the marts of a published file, and query a warehouse's state."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import polars as pl

from warehouse.catalog import MART_KEYS
from warehouse.store import state_path_for


def assert_frames_match(
    ours: pl.DataFrame, theirs: pl.DataFrame, keys: list[str], *, tolerance: float = 1e-9
) -> None:
    """Every row of one is in the other by `keys`; every shared column is equal (floats to
    `tolerance`, relative above 1); NULL only where the other is NULL."""
    columns = [c for c in theirs.columns if c in ours.columns]
    missing = [c for c in theirs.columns if c not in ours.columns]
    assert not missing, f"columns missing from ours: {missing}"
    left = ours.select(columns).sort(keys)
    right = theirs.select(columns).sort(keys)
    only_left = left.select(keys).join(right.select(keys), on=keys, how="anti", nulls_equal=True)
    only_right = right.select(keys).join(left.select(keys), on=keys, how="anti", nulls_equal=True)
    assert only_left.is_empty() and only_right.is_empty(), (
        f"rows differ: only ours {only_left.head(5).rows()}, "
        f"only theirs {only_right.head(5).rows()}"
    )
    problems = []
    for column in columns:
        a, b = left[column], right[column]
        for i, (x, y) in enumerate(zip(a.to_list(), b.to_list(), strict=True)):
            if x is None or y is None:
                same = x is None and y is None
            elif isinstance(x, float) or isinstance(y, float):
                same = math.isclose(float(x), float(y), rel_tol=tolerance, abs_tol=tolerance)
            else:
                same = x == y
            if not same:
                key = left.select(keys).row(i)
                problems.append(f"{column} at {key}: ours {x!r}, theirs {y!r}")
                break
    assert not problems, "\n".join(problems)


def published_marts(warehouse: Path) -> dict[str, pl.DataFrame]:
    """Every mart of a published warehouse file, read as a BI tool reads it (read-only)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {name: con.execute(f"SELECT * FROM marts.{name}").pl() for name in MART_KEYS}
    finally:
        con.close()


def query_state(warehouse: Path, sql: str) -> pl.DataFrame:
    """The result of `sql` on the state database beside a published warehouse (read-only)."""
    con = duckdb.connect(str(state_path_for(warehouse)), read_only=True)
    try:
        return con.execute(sql).pl()
    finally:
        con.close()
