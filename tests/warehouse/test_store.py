"""The state database: the load keeps the first copy of an event delivered twice."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl

from transforms import core
from warehouse.store import StateStore


def test_an_event_delivered_twice_is_loaded_once_from_the_copy_read_first(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.duckdb")
    store.reset_stage()
    at_ten = datetime(2026, 11, 23, 10)
    errors = pl.DataFrame(
        {
            "agent_id": ["a1", "a1", "a1", "a2"],
            "ts": [at_ten, datetime(2026, 11, 23, 10, 5), at_ten, at_ten],
            "task_type": [None, None, None, None],
            "error_type": ["TimeoutError", "KeyError", "TimeoutError (copy)", "TimeoutError"],
            "message": ["timed out", "missing", "timed out", "timed out"],
            # The copy of a1's 10:00 error was read before the original.
            "read_order": [5, 6, 2, 7],
        },
        schema={**core.FCT_AGENT_ERRORS, "read_order": pl.Int64},
    )
    store.append_table("stage", "fct_agent_errors", errors)
    kept = store.load_first_copies(
        "stage", "fct_agent_errors", "core", "fct_agent_errors", core.EVENT_KEY
    )
    rows = store.query("SELECT * FROM core.fct_agent_errors ORDER BY agent_id, ts")
    store.close()
    assert kept == 3
    assert rows["error_type"].to_list() == ["TimeoutError (copy)", "KeyError", "TimeoutError"]
    assert "read_order" not in rows.columns
