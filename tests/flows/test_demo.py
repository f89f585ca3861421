"""The synthetic platform follows the source contract, and its manifest tells the truth.

Every check here reads the generated files with plain sqlite3, json and gzip and applies the
contract's validity rules independently of the generator's code.
"""

from __future__ import annotations

import gzip
import json
import re
import sqlite3
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flows import demo
from flows.demo import generate_demo

END = date(2026, 11, 24)
NOW = datetime.now(UTC).replace(tzinfo=None)

# contract/sources.md, section 1: column names and declared types.
CONTRACT = {
    "agents": [
        ("agent_id", "TEXT"),
        ("agent_class", "TEXT"),
        ("department", "TEXT"),
        ("deployed_at", "DATETIME"),
        ("deployment_status", "TEXT"),
        ("hourly_cost_usd", "REAL"),
    ],
    "agent_performance": [
        ("id", "INTEGER"),
        ("agent_id", "TEXT"),
        ("department", "TEXT"),
        ("task_type", "TEXT"),
        ("execution_time", "REAL"),
        ("success_rate", "REAL"),
        ("timestamp", "DATETIME"),
    ],
    "workflow_executions": [
        ("workflow_id", "TEXT"),
        ("workflow_name", "TEXT"),
        ("initiator_agent_id", "TEXT"),
        ("participant_agent_ids", "TEXT"),
        ("started_at", "DATETIME"),
        ("completed_at", "DATETIME"),
        ("status", "TEXT"),
        ("errors", "INTEGER"),
        ("errors_recovered", "INTEGER"),
        ("updated_at", "DATETIME"),
    ],
    "agent_communications": [
        ("id", "INTEGER"),
        ("message_id", "TEXT"),
        ("sender_agent_id", "TEXT"),
        ("receiver_agent_id", "TEXT"),
        ("message_type", "TEXT"),
        ("sent_at", "DATETIME"),
        ("received_at", "DATETIME"),
        ("responded_at", "DATETIME"),
        ("status", "TEXT"),
        ("updated_at", "DATETIME"),
    ],
    "business_metrics": [
        ("id", "INTEGER"),
        ("metric_date", "DATE"),
        ("department", "TEXT"),
        ("metric_name", "TEXT"),
        ("value", "REAL"),
        ("recorded_at", "DATETIME"),
    ],
    "business_targets": [
        ("metric_name", "TEXT"),
        ("period_start", "DATE"),
        ("period_end", "DATE"),
        ("target_value", "REAL"),
    ],
}
PRIMARY_KEYS = {
    "agents": "agent_id",
    "agent_performance": "id",
    "workflow_executions": "workflow_id",
    "agent_communications": "id",
    "business_metrics": "id",
}
LOG_NAME = re.compile(
    r"^(?P<agent>.+)-(?P<hour>\d\d)(?:\.redelivered(?:-(?P<day>\d{4}-\d\d-\d\d))?)?\.jsonl(?:\.gz)?$"
)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve agents (every role of the story: failed, retired, late, degrading, ...), no flaws."""
    out = tmp_path_factory.mktemp("clean")
    generate_demo(out, agents=12, days=1, end=END, seed=11)
    return out


@pytest.fixture(scope="module")
def flawed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("flawed")
    generate_demo(out, agents=6, days=2, end=END, seed=3, flaw_rate=0.003, gzip_share=0.5)
    return out


@pytest.fixture(scope="module")
def clean_audit(clean: Path) -> dict[str, Any]:
    return audit(clean)


@pytest.fixture(scope="module")
def flawed_audit(flawed: Path) -> dict[str, Any]:
    return audit(flawed)


# --- an independent reading


def ts(value: Any) -> datetime:
    """A contract timestamp as a naive UTC datetime; ValueError when it does not parse."""
    if not isinstance(value, str):
        raise ValueError(value)
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def timestamp_rules(value: Any, nullable: bool = False) -> list[str]:
    if value is None:
        return [] if nullable else ["missing_field"]
    try:
        parsed = ts(value)
    except ValueError:
        return ["unparseable_timestamp"]
    return ["future_timestamp"] if parsed > NOW + timedelta(minutes=5) else []


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def number_rules(value: Any, low: float, high: float = float("inf")) -> list[str]:
    if value is None:
        return ["missing_field"]
    if not is_number(value):
        return ["wrong_type"]
    return [] if low <= value <= high else ["out_of_range"]


def before(a: Any, b: Any) -> bool:
    """Whether both parse and a lies strictly before b."""
    try:
        return ts(a) < ts(b)
    except ValueError:
        return False


def table_rules(table: str, row: dict[str, Any], agents: set[str]) -> list[str]:
    """Every rule of 'What counts as valid' that a row breaks."""
    broken: list[str] = []
    if table == "agents":
        broken += timestamp_rules(row["deployed_at"])
        if not is_number(row["hourly_cost_usd"]):
            broken.append("wrong_type")
        if row["deployment_status"] not in {"deployed", "failed", "retired"}:
            broken.append("unknown_status")
    elif table == "agent_performance":
        broken += number_rules(row["execution_time"], 0.0)
        broken += number_rules(row["success_rate"], 0.0, 100.0)
        broken += timestamp_rules(row["timestamp"])
        if row["agent_id"] not in agents:
            broken.append("unknown_agent")
    elif table == "workflow_executions":
        for column in ("started_at", "completed_at", "updated_at"):
            broken += timestamp_rules(row[column], nullable=column == "completed_at")
        errors, recovered = row["errors"], row["errors_recovered"]
        if not all(isinstance(v, int) for v in (errors, recovered)):
            broken.append("wrong_type")
        elif not 0 <= recovered <= errors:
            broken.append("out_of_range")
        if row["completed_at"] is not None and before(row["completed_at"], row["started_at"]):
            broken.append("time_order")
        if row["status"] not in {"running", "completed", "failed"}:
            broken.append("unknown_status")
        try:
            members = json.loads(row["participant_agent_ids"])
            ok = isinstance(members, list) and all(isinstance(m, str) for m in members)
        except ValueError:
            ok = False
        if not ok:
            broken.append("bad_participants")
        elif not {row["initiator_agent_id"], *members} <= agents:
            broken.append("unknown_agent")
    elif table == "agent_communications":
        for column in ("sent_at", "received_at", "responded_at", "updated_at"):
            broken += timestamp_rules(
                row[column], nullable=column in ("received_at", "responded_at")
            )
        if row["received_at"] is not None and before(row["received_at"], row["sent_at"]):
            broken.append("time_order")
        if row["responded_at"] is not None and before(row["responded_at"], row["received_at"]):
            broken.append("time_order")
        if row["status"] not in {"pending", "delivered", "failed"}:
            broken.append("unknown_status")
        if not {row["sender_agent_id"], row["receiver_agent_id"]} <= agents:
            broken.append("unknown_agent")
    elif table == "business_metrics":
        value = row["value"]
        broken += ["missing_field"] if value is None else [] if is_number(value) else ["wrong_type"]
        broken += timestamp_rules(row["recorded_at"])
        date.fromisoformat(row["metric_date"])
    return broken


def line_rules(text: str, agents: set[str]) -> tuple[list[str], dict[str, Any] | None]:
    """The rules a log line breaks, and the event when it is a JSON object."""
    try:
        event = json.loads(text)
    except ValueError:
        return ["not_json"], None
    if not isinstance(event, dict):
        return ["not_json"], None
    if not {"ts", "agent_id", "event"} <= event.keys():
        return ["missing_field"], event
    broken = timestamp_rules(event["ts"])
    if event["event"] == "heartbeat":
        if event["status"] not in {"ok", "degraded"}:
            broken.append("unknown_status")
        for key in ("task_queue", "message_queue"):
            value = event[key]
            if not isinstance(value, int) or isinstance(value, bool):
                broken.append("wrong_type")
            elif value < 0:
                broken.append("out_of_range")
    elif event["event"] == "resource":
        for key in ("cpu_pct", "memory_mb"):
            broken += number_rules(event[key], 0.0)
    if event["agent_id"] not in agents:
        broken.append("unknown_agent")
    return broken, event


def read_tables(root: Path) -> dict[str, list[dict[str, Any]]]:
    con = sqlite3.connect(root / "agents.db")
    con.row_factory = sqlite3.Row
    try:
        return {
            table: [dict(r) for r in con.execute(f"SELECT * FROM {table} ORDER BY rowid")]
            for table in CONTRACT
        }
    finally:
        con.close()


def log_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "logs").rglob("*") if p.is_file())


def read_lines(path: Path) -> list[str]:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    text = data.decode("utf-8")
    assert text.endswith("\n")
    return text[:-1].split("\n")


def audit(root: Path) -> dict[str, Any]:
    """Count, independently of the generator, what a loader would see in the platform."""
    tables = read_tables(root)
    bad: dict[str, Counter[str]] = defaultdict(Counter)
    valid: dict[str, list[dict[str, Any]]] = {}
    agents = {r["agent_id"] for r in tables["agents"] if not table_rules("agents", r, set())}
    for table, rows in tables.items():
        valid[table] = []
        for row in rows:
            broken = table_rules(table, row, agents)
            assert len(broken) <= 1, (table, row, broken)
            if broken:
                bad[table][broken[0]] += 1
            else:
                valid[table].append(row)

    events: Counter[str] = Counter()
    seen: set[tuple[str, str, datetime]] = set()
    duplicates = lines_read = 0
    for path in log_files(root):
        for text in read_lines(path):
            lines_read += 1
            broken, event = line_rules(text, agents)
            assert len(broken) <= 1, (path, text, broken)
            if broken:
                bad["logs"][broken[0]] += 1
                continue
            assert event is not None
            key = (event["agent_id"], event["event"], ts(event["ts"]))
            if key in seen:
                duplicates += 1
            else:
                seen.add(key)
                events[event["event"]] += 1
    return {
        "tables": tables,
        "valid": valid,
        "bad": bad,
        "events": events,
        "duplicates": duplicates,
        "lines_read": lines_read,
    }


def late_rows(rows: list[dict[str, Any]]) -> int:
    """Rows whose timestamp is older than that of a row inserted before them."""
    latest, late = None, 0
    for row in rows:
        at = ts(row["timestamp"])
        if latest is not None and at < latest:
            late += 1
        latest = at if latest is None else max(latest, at)
    return late


# --- tests


def test_the_six_tables_have_the_contracts_columns_and_types(clean: Path) -> None:
    con = sqlite3.connect(clean / "agents.db")
    try:
        for table, columns in CONTRACT.items():
            info = con.execute(f"PRAGMA table_info({table})").fetchall()
            assert [(c[1], c[2]) for c in info] == columns, table
            if table in PRIMARY_KEYS:
                assert [c[1] for c in info if c[5]] == [PRIMARY_KEYS[table]]
        unique = con.execute("PRAGMA index_list(agent_communications)").fetchall()
        assert any(u[2] for u in unique)
    finally:
        con.close()


def test_at_flaw_rate_zero_every_row_and_line_is_valid(
    clean: Path, clean_audit: dict[str, Any]
) -> None:
    found = clean_audit
    assert not found["bad"]
    assert found["duplicates"] == 0
    manifest = json.loads((clean / "demo_manifest.json").read_text())
    assert all(n == 0 for rules in manifest["bad_input"].values() for n in rules.values())
    assert manifest["duplicate_events"] == 0
    assert dict(found["events"]) == {k: v for k, v in manifest["events"].items() if v}
    assert found["lines_read"] == manifest["log_lines"]
    for table, rows in found["tables"].items():
        assert len(rows) == manifest["rows"][table] > 0, table


def test_manifest_counts_match_what_the_files_hold(
    flawed: Path, flawed_audit: dict[str, Any]
) -> None:
    found = flawed_audit
    manifest = json.loads((flawed / "demo_manifest.json").read_text())
    for source, rules in manifest["bad_input"].items():
        assert dict(found["bad"][source]) == {r: n for r, n in rules.items() if n}, source
    for table, rows in found["tables"].items():
        assert len(rows) == manifest["rows"][table], table
        assert len(found["valid"][table]) == manifest["valid_rows"][table], table
    assert dict(found["events"]) == {k: v for k, v in manifest["events"].items() if v}
    assert (
        found["duplicates"] == manifest["duplicate_events"] > manifest["duplicated_log_files"] > 0
    )
    read = sum(found["events"].values()) + found["duplicates"] + sum(found["bad"]["logs"].values())
    assert found["lines_read"] == manifest["log_lines"] == read
    assert manifest["unknown_agent_rows"] == sum(c["unknown_agent"] for c in found["bad"].values())


def test_every_rule_appears_where_it_makes_sense(flawed: Path) -> None:
    bad = json.loads((flawed / "demo_manifest.json").read_text())["bad_input"]
    for rule in demo.RULES:
        assert sum(source[rule] for source in bad.values()) >= 1, rule
    expected = {
        "agents": {"missing_field", "wrong_type", "unparseable_timestamp", "future_timestamp"},
        "agent_performance": {"missing_field", "wrong_type", "out_of_range", "unknown_agent"},
        "workflow_executions": {
            "time_order",
            "unknown_status",
            "bad_participants",
            "unknown_agent",
        },
        "agent_communications": {"missing_field", "time_order", "unknown_status", "unknown_agent"},
        "business_metrics": {"missing_field", "wrong_type", "unparseable_timestamp"},
        "logs": {"not_json", "missing_field", "wrong_type", "out_of_range", "unknown_status"},
    }
    for source, rules in expected.items():
        assert all(bad[source][rule] >= 1 for rule in rules), source


def test_the_story_shows_in_the_data(clean: Path, clean_audit: dict[str, Any]) -> None:
    found = clean_audit
    manifest = json.loads((clean / "demo_manifest.json").read_text())
    special = manifest["special_agents"]
    tasks = found["valid"]["agent_performance"]
    by_agent = Counter(t["agent_id"] for t in tasks)
    assert special["failed"] and by_agent[special["failed"][0]] == 0
    retired = special["retired"][0]
    assert max(ts(t["timestamp"]) for t in tasks if t["agent_id"] == retired["agent_id"]) < ts(
        retired["active_until"]
    )
    assert late_rows(tasks) == manifest["late_rows"] > 0
    registry = {a["agent_id"]: a["department"] for a in found["valid"]["agents"]}
    moved = sum(t["department"] != registry[t["agent_id"]] for t in tasks)
    assert moved == manifest["department_mismatches"] > 0
    rates = Counter(t["success_rate"] for t in tasks)
    assert rates[100.0] > rates[0.0] > 0 and any(0 < r < 100 for r in rates)
    assert all(r * 2 == int(r * 2) for r in rates)
    figures = found["valid"]["business_metrics"]
    keys = Counter((f["metric_date"], f["department"], f["metric_name"]) for f in figures)
    assert len(figures) - len(keys) == manifest["restated_business_figures"] >= 2
    recorded = Counter(
        (f["metric_date"], f["department"], f["metric_name"], f["recorded_at"]) for f in figures
    )
    assert sum(n - 1 for n in recorded.values()) == manifest["restatement_ties"] >= 1
    assert demo.EXTRA_METRIC in {f["metric_name"] for f in figures}
    statuses = Counter(w["status"] for w in found["valid"]["workflow_executions"])
    assert statuses["completed"] > 0
    assert manifest["other_event_lines"] == sum(
        n for e, n in found["events"].items() if e not in ("heartbeat", "resource", "error")
    )


def test_offsets_convert_to_the_files_utc_hour(clean: Path) -> None:
    offsets = Counter()
    beats: dict[str, list[datetime]] = defaultdict(list)
    for path in log_files(clean):
        name = LOG_NAME.match(path.name)
        assert name is not None, path
        day = date.fromisoformat(name["day"] or path.parent.name)
        for text in read_lines(path):
            event = json.loads(text)
            at = ts(event["ts"])
            offsets[event["ts"][-6:] if event["ts"][-6] == "+" else "naive or Z"] += 1
            assert (at.date(), at.hour) == (day, int(name["hour"])), (path, text)
            if event["event"] == "heartbeat":
                beats[event["agent_id"]].append(at)
    assert offsets["+02:00"] > 0 and offsets["+05:30"] > 0
    gaps = [
        (b - a).total_seconds()
        for series in beats.values()
        for a, b in zip(sorted(series), sorted(series)[1:], strict=False)
    ]
    assert sum(58 <= g <= 62 for g in gaps) / len(gaps) > 0.99


def test_gzip_files_are_readable_and_about_the_share_asked(flawed: Path) -> None:
    files = log_files(flawed)
    packed = [p for p in files if p.name.endswith(".gz")]
    for path in packed:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            assert f.readline()
    assert 0.35 < len(packed) / len(files) < 0.65


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    def snapshot(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
        }

    first, second = tmp_path / "a", tmp_path / "b"
    generate_demo(first, agents=3, days=1, end=END, flaw_rate=0.01)
    generate_demo(second, agents=3, days=1, end=END, flaw_rate=0.01)
    assert snapshot(first) == snapshot(second)
    generate_demo(second, agents=3, days=1, end=END, flaw_rate=0.01, seed=8)
    assert snapshot(first) != snapshot(second)


def test_logs_written_in_a_second_process_are_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate_demo(tmp_path / "inline", agents=2, days=2, end=END, flaw_rate=0.01)
    monkeypatch.setattr(demo, "_PARALLEL_MIN_AGENT_DAYS", 1)
    generate_demo(tmp_path / "spawned", agents=2, days=2, end=END, flaw_rate=0.01)
    for path in (tmp_path / "inline").rglob("*"):
        if path.is_file():
            twin = tmp_path / "spawned" / path.relative_to(tmp_path / "inline")
            assert twin.read_bytes() == path.read_bytes(), path


@pytest.mark.parametrize("agents", [1, 2])
def test_any_platform_size_works(tmp_path: Path, agents: int) -> None:
    manifest = generate_demo(tmp_path, agents=agents, days=1, end=END, flaw_rate=0.01)
    found = audit(tmp_path)
    assert len(found["valid"]["agents"]) == agents
    assert manifest["rows"]["agent_performance"] > 0
    for source, rules in manifest["bad_input"].items():
        assert dict(found["bad"][source]) == {r: n for r, n in rules.items() if n}, source


def test_the_returned_manifest_is_the_one_written(tmp_path: Path) -> None:
    manifest = generate_demo(tmp_path, agents=2, days=1, end=END)
    assert json.loads((tmp_path / "demo_manifest.json").read_text()) == manifest
    assert manifest["parameters"]["start"] == "2026-11-23"
    assert sorted(manifest["bad_input"]) == sorted(demo.SOURCES)
