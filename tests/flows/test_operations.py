"""What operators and BI tools get besides the marts: docs/marts.md kept up to date, the marts
as Parquet, and `agentkpi status` for monitors."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from flows import cli
from tests.support.compare import published_marts
from warehouse.catalog import COLUMN_COMMENTS, MART_KEYS
from warehouse.read import marts_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs" / "marts.md"


@pytest.fixture(scope="module")
def warehouse(flawed_run) -> Path:  # type: ignore[no-untyped-def]
    settings, _ = flawed_run
    return settings.warehouse


def test_docs_marts_md_is_what_the_warehouse_says(warehouse: Path) -> None:
    generated = marts_markdown(warehouse)
    assert DOCS.read_text() == generated, "docs/marts.md is out of date: run `agentkpi docs`"


def test_docs_give_every_mart_its_grain_columns_and_an_example(warehouse: Path) -> None:
    text = marts_markdown(warehouse)
    for mart in MART_KEYS:
        assert f"## marts.{mart}" in text
        section = text.split(f"## marts.{mart}")[1].split("\n## ")[0]
        assert "Grain: one row per" in section and "```sql" in section
        for column, definition in COLUMN_COMMENTS[mart].items():
            assert f"| `{column}` |" in section and definition.replace("|", "\\|") in section


def test_export_writes_every_mart_as_parquet(warehouse: Path, tmp_path: Path) -> None:
    assert cli.main(["export", str(tmp_path), "--warehouse", str(warehouse)]) == 0
    marts = published_marts(warehouse)
    for name, frame in marts.items():
        # In the order of the mart's key.
        assert pl.read_parquet(tmp_path / f"{name}.parquet").equals(frame.sort(MART_KEYS[name]))
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_status_lists_runs_and_exits_non_zero_on_stale_sources(
    warehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The flawed platform ends in 2026: by today's clock every source is stale.
    assert cli.main(["status", "--warehouse", str(warehouse)]) == cli.STALE_EXIT
    out = capsys.readouterr().out
    assert "succeeded" in out and "STALE" in out
    assert "quarantine:" in out and "rows held" in out
    ten_years = str(10 * 365 * 86400)
    assert cli.main(["status", "--warehouse", str(warehouse), "--stale-after-s", ten_years]) == 0
    assert "STALE" not in capsys.readouterr().out


def test_status_without_a_warehouse_is_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli.main(["status", "--warehouse", str(tmp_path / "none.duckdb")]) == 1
    assert capsys.readouterr().err.count("\n") == 1
