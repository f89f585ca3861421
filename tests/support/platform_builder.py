"""Build a tiny platform (SQLite + log files) from hand-written rows, for tests.

The tables are declared exactly as contract/sources.md declares them; values are written as
given (text, numbers or None), so a test can put any flaw in any column.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from flows.extract import SOURCE_TABLES

DDL = """
CREATE TABLE agents (agent_id TEXT PRIMARY KEY, agent_class TEXT, department TEXT,
    deployed_at DATETIME, deployment_status TEXT, hourly_cost_usd REAL);
CREATE TABLE agent_performance (id INTEGER PRIMARY KEY, agent_id TEXT, department TEXT,
    task_type TEXT, execution_time REAL, success_rate REAL, timestamp DATETIME);
CREATE TABLE workflow_executions (workflow_id TEXT PRIMARY KEY, workflow_name TEXT,
    initiator_agent_id TEXT, participant_agent_ids TEXT, started_at DATETIME,
    completed_at DATETIME NULL, status TEXT, errors INTEGER, errors_recovered INTEGER,
    updated_at DATETIME);
CREATE TABLE agent_communications (id INTEGER PRIMARY KEY, message_id TEXT UNIQUE,
    sender_agent_id TEXT, receiver_agent_id TEXT, message_type TEXT, sent_at DATETIME,
    received_at DATETIME NULL, responded_at DATETIME NULL, status TEXT, updated_at DATETIME);
CREATE TABLE business_metrics (id INTEGER PRIMARY KEY, metric_date DATE, department TEXT,
    metric_name TEXT, value REAL, recorded_at DATETIME);
CREATE TABLE business_targets (metric_name TEXT, period_start DATE, period_end DATE,
    target_value REAL);
"""

# The contract's columns per table, as the extract reads them.
COLUMNS = SOURCE_TABLES


def write_database(path: Path, tables: Mapping[str, Iterable[Mapping[str, object]]]) -> str:
    """Create the six tables and insert the given rows; returns the sqlite URL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.executescript(DDL)
    for table, rows in tables.items():
        columns = COLUMNS[table]
        for row in rows:
            unknown = set(row) - set(columns)
            assert not unknown, f"{table} has no column {unknown}"
            con.execute(
                f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
    con.commit()
    con.close()
    return "sqlite:///" + str(path.resolve())


def write_log(logs_dir: Path, relative: str, events: Sequence[Mapping[str, object] | str]) -> Path:
    """Write one log file (gzip when the name ends in .gz); a str event is written verbatim."""
    path = logs_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events)
    if relative.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
        path.write_text(text)
    return path
