"""A synthetic agent platform: the demo's data, the tests' fixtures, the benchmark's input.

`generate_demo` writes what the platform of `shared/contract/sources.md` writes, following
the contract to the letter: `agents.db` (SQLite, the six tables with the contract's columns
and declared types, timestamps as ISO text) and `logs/<YYYY-MM-DD>/<agent_id>-<HH>.jsonl`
(one file per agent per UTC hour, some gzip-compressed). It also writes `demo_manifest.json`,
which says exactly what was written, so a pipeline's counts can be checked against it:
`log_lines = sum(events) + duplicate_events + bad_input_total["logs"]`, and for each table
`rows = valid_rows + bad_input_total[table]`.

At `flaw_rate=0` every row and line is valid, and the data is still realistic: busier
business hours, two agents that degrade, one outage, one failed and one retired deployment,
two late deployments, late-arriving task rows, restated business figures (one tie on
`recorded_at`), an agent that moved department, mixed timestamp formats, unknown extra fields
and a few events of other types (`debug`, `config_reload`).

With `flaw_rate > 0`, bad input is added, never substituted: each bad row or line is an extra
copy of a valid one with exactly one thing broken, so exactly one rule of `RULES` applies. Bad
log lines sit in the file of the line they copy, moved 29 s (heartbeats) or 149 s (resource
samples) so that their (agent_id, event, ts) is no valid event's. Agents named `ghost-agent-0N`
are unknown to the registry (their log lines have files of their own); `bad-agent-NN` rows of
`agents` are the registry's own bad rows and nothing refers to them. Duplicates: a whole file
delivered again, either with the same bytes beside it (`<agent>-<HH>.redelivered.jsonl[.gz]`)
or recompressed the other way in the next day's directory
(`<agent>-<HH>.redelivered-<its own date>.jsonl[.gz]`), taken only from files without bad or
other-type lines; and single event lines repeated byte for byte right after themselves.

Timestamps: `2026-11-23 14:05:09`, `2026-11-23 14:05:09.120`, `2026-11-23T14:05:09.120Z`,
`2026-11-23T14:05:09Z`, `2026-11-23T14:05:09.120+00:00`, `2026-11-23T14:05:09.120000`,
`2026-11-23T16:05:09.120+02:00` and `2026-11-23 19:35:09+05:30` (the last two: local time of
the same instant). Log files are named after the UTC hour of their events.

Everything is drawn from numpy generators seeded by `(seed, day, stream)`, so a fixed
`(seed, end, parameters)` gives byte-for-byte the same output; data is generated one day at a
time, so memory stays flat however many days are asked for. Large platforms write the logs in
two more processes while this one writes the database.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

RULES: tuple[str, ...] = (
    "not_json",
    "missing_field",
    "wrong_type",
    "unparseable_timestamp",
    "future_timestamp",
    "out_of_range",
    "time_order",
    "unknown_status",
    "bad_participants",
    "unknown_agent",
)
"""The rule names a bad row or line is recorded under (manifest `bad_input`)."""

SOURCES: tuple[str, ...] = (
    "agents",
    "agent_performance",
    "workflow_executions",
    "agent_communications",
    "business_metrics",
    "business_targets",
    "logs",
)

TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "agents": (
        ("agent_id", "TEXT PRIMARY KEY"),
        ("agent_class", "TEXT"),
        ("department", "TEXT"),
        ("deployed_at", "DATETIME"),
        ("deployment_status", "TEXT"),
        ("hourly_cost_usd", "REAL"),
    ),
    "agent_performance": (
        ("id", "INTEGER PRIMARY KEY"),
        ("agent_id", "TEXT"),
        ("department", "TEXT"),
        ("task_type", "TEXT"),
        ("execution_time", "REAL"),
        ("success_rate", "REAL"),
        ("timestamp", "DATETIME"),
    ),
    "workflow_executions": (
        ("workflow_id", "TEXT PRIMARY KEY"),
        ("workflow_name", "TEXT"),
        ("initiator_agent_id", "TEXT"),
        ("participant_agent_ids", "TEXT"),
        ("started_at", "DATETIME"),
        ("completed_at", "DATETIME NULL"),
        ("status", "TEXT"),
        ("errors", "INTEGER"),
        ("errors_recovered", "INTEGER"),
        ("updated_at", "DATETIME"),
    ),
    "agent_communications": (
        ("id", "INTEGER PRIMARY KEY"),
        ("message_id", "TEXT UNIQUE"),
        ("sender_agent_id", "TEXT"),
        ("receiver_agent_id", "TEXT"),
        ("message_type", "TEXT"),
        ("sent_at", "DATETIME"),
        ("received_at", "DATETIME NULL"),
        ("responded_at", "DATETIME NULL"),
        ("status", "TEXT"),
        ("updated_at", "DATETIME"),
    ),
    "business_metrics": (
        ("id", "INTEGER PRIMARY KEY"),
        ("metric_date", "DATE"),
        ("department", "TEXT"),
        ("metric_name", "TEXT"),
        ("value", "REAL"),
        ("recorded_at", "DATETIME"),
    ),
    "business_targets": (
        ("metric_name", "TEXT"),
        ("period_start", "DATE"),
        ("period_end", "DATE"),
        ("target_value", "REAL"),
    ),
}
"""The operational tables exactly as the source contract declares them."""

DEPARTMENTS: tuple[str, ...] = (
    "finance",
    "business_intelligence",
    "automation",
    "communication",
    "marketing",
    "operations",
)
GHOST_AGENTS: tuple[str, ...] = ("ghost-agent-01", "ghost-agent-02", "ghost-agent-03")
EXTRA_METRIC = "process_efficiency_pct"
"""A business metric name outside the contract's list: the pipeline must keep it."""


@dataclass(frozen=True)
class _AgentClass:
    name: str
    prefix: str
    department: str
    task_types: tuple[str, ...]
    exec_median_s: float
    fail_share: float
    tasks_per_min: float
    hourly_cost_usd: float
    cpu_pct: float
    memory_mb: float


# Agents are dealt out in this order, so any platform size spreads over the departments.
_CLASSES: tuple[_AgentClass, ...] = (
    _AgentClass(
        "FinancialAnalysisAgent",
        "fin-analysis",
        "finance",
        ("report_generation", "ratio_calculation", "data_processing", "compliance_check"),
        exec_median_s=2.5,
        fail_share=0.02,
        tasks_per_min=1.0,
        hourly_cost_usd=0.25,
        cpu_pct=35.0,
        memory_mb=768.0,
    ),
    _AgentClass(
        "ComprehensiveAnalyticsAgent",
        "bi-analytics",
        "business_intelligence",
        ("dashboard_generation", "data_visualization", "predictive_modeling", "executive_report"),
        exec_median_s=4.0,
        fail_share=0.03,
        tasks_per_min=0.85,
        hourly_cost_usd=0.45,
        cpu_pct=90.0,
        memory_mb=2048.0,
    ),
    _AgentClass(
        "WorkflowOrchestrationAgent",
        "auto-workflow",
        "automation",
        ("workflow_coordination", "task_dispatch", "error_recovery"),
        exec_median_s=0.6,
        fail_share=0.015,
        tasks_per_min=1.35,
        hourly_cost_usd=0.15,
        cpu_pct=20.0,
        memory_mb=384.0,
    ),
    _AgentClass(
        "ContentWritingAgent",
        "comm-content",
        "communication",
        ("content_generation", "seo_optimization", "content_review"),
        exec_median_s=6.0,
        fail_share=0.04,
        tasks_per_min=0.7,
        hourly_cost_usd=0.35,
        cpu_pct=45.0,
        memory_mb=1024.0,
    ),
    _AgentClass(
        "LeadGenerationAgent",
        "mkt-leadgen",
        "marketing",
        ("lead_scoring", "lead_enrichment", "outreach_email"),
        exec_median_s=1.2,
        fail_share=0.025,
        tasks_per_min=1.1,
        hourly_cost_usd=0.2,
        cpu_pct=25.0,
        memory_mb=512.0,
    ),
    _AgentClass(
        "ProcessAutomationAgent",
        "ops-process",
        "operations",
        ("process_execution", "data_sync", "invoice_processing"),
        exec_median_s=0.8,
        fail_share=0.02,
        tasks_per_min=1.2,
        hourly_cost_usd=0.1,
        cpu_pct=18.0,
        memory_mb=320.0,
    ),
    _AgentClass(
        "FinancialModelingAgent",
        "fin-modeling",
        "finance",
        ("forecast", "scenario_analysis", "risk_assessment"),
        exec_median_s=8.0,
        fail_share=0.03,
        tasks_per_min=0.75,
        hourly_cost_usd=0.6,
        cpu_pct=140.0,
        memory_mb=3072.0,
    ),
    _AgentClass(
        "MarketAnalysisAgent",
        "bi-market",
        "business_intelligence",
        ("trend_prediction", "competitive_analysis", "research_report", "data_integration"),
        exec_median_s=3.0,
        fail_share=0.035,
        tasks_per_min=0.9,
        hourly_cost_usd=0.4,
        cpu_pct=60.0,
        memory_mb=1536.0,
    ),
    _AgentClass(
        "ResourceOptimizationAgent",
        "auto-resource",
        "automation",
        ("resource_allocation", "cost_optimization", "bottleneck_analysis"),
        exec_median_s=1.5,
        fail_share=0.015,
        tasks_per_min=1.2,
        hourly_cost_usd=0.2,
        cpu_pct=30.0,
        memory_mb=640.0,
    ),
    _AgentClass(
        "SocialMediaMonitoringAgent",
        "comm-social",
        "communication",
        ("sentiment_analysis", "mention_detection", "automated_posting"),
        exec_median_s=0.9,
        fail_share=0.05,
        tasks_per_min=1.0,
        hourly_cost_usd=0.12,
        cpu_pct=28.0,
        memory_mb=448.0,
    ),
    _AgentClass(
        "CampaignManagementAgent",
        "mkt-campaign",
        "marketing",
        ("campaign_setup", "ab_test_analysis", "audience_segmentation"),
        exec_median_s=2.0,
        fail_share=0.03,
        tasks_per_min=0.9,
        hourly_cost_usd=0.3,
        cpu_pct=40.0,
        memory_mb=896.0,
    ),
    _AgentClass(
        "ComplianceMonitoringAgent",
        "ops-compliance",
        "operations",
        ("audit_check", "policy_review", "anomaly_detection"),
        exec_median_s=1.8,
        fail_share=0.02,
        tasks_per_min=1.05,
        hourly_cost_usd=0.05,
        cpu_pct=22.0,
        memory_mb=256.0,
    ),
)
_TASK_TYPES: tuple[str, ...] = tuple(t for c in _CLASSES for t in c.task_types)
_TYPE_COUNT = np.array([len(c.task_types) for c in _CLASSES], dtype=np.int64)
_TYPE_OFFSET = np.concatenate([[0], np.cumsum(_TYPE_COUNT)[:-1]]).astype(np.int64)
_EXEC_MEDIAN = np.array([c.exec_median_s for c in _CLASSES])
_FAIL_SHARE = np.array([c.fail_share for c in _CLASSES])

# (name, departments it draws participants from, median duration in s, weight)
_WORKFLOWS: tuple[tuple[str, tuple[str, ...], float, float], ...] = (
    ("quarterly_close", ("finance",), 1800.0, 0.5),
    ("invoice_reconciliation", ("finance", "operations"), 600.0, 1.0),
    ("forecast_refresh", ("finance", "business_intelligence"), 900.0, 1.0),
    ("market_report", ("business_intelligence", "marketing"), 1200.0, 1.0),
    ("lead_nurture", ("marketing", "communication"), 300.0, 1.5),
    ("campaign_launch", ("marketing", "communication", "business_intelligence"), 2400.0, 0.7),
    ("content_pipeline", ("communication", "marketing"), 900.0, 1.0),
    ("resource_rebalance", ("automation", "operations"), 240.0, 1.2),
    ("incident_response", ("operations", "automation"), 180.0, 0.8),
)
_ERRORS: tuple[tuple[str, str], ...] = (
    ("TimeoutError", "upstream API timed out"),
    ("ConnectionError", "connection reset by peer"),
    ("ValueError", "unexpected value in input record"),
    ("RateLimitError", "rate limit exceeded, retrying later"),
    ("KeyError", "missing key in task payload"),
)
_MESSAGE_TYPES: tuple[str, ...] = ("request", "result", "notification")

_S = 1_000
_MIN = 60 * _S
_HOUR = 60 * _MIN
_DAY = 24 * _HOUR
_FAR = np.int64(2**62)

# Share of the day's load per UTC hour, mean 1: busier in business hours.
_HOUR_LOAD = np.array([0.45] * 6 + [0.7, 1.0] + [1.55] * 10 + [1.1, 0.85, 0.75, 0.65, 0.55, 0.5])
_HOUR_LOAD = _HOUR_LOAD / _HOUR_LOAD.mean()
# Brings the average over classes and weekdays (weekends run at 0.7) to one task a minute.
_TASK_SCALE = 1.0 / (np.mean([c.tasks_per_min for c in _CLASSES]) * (5 + 2 * 0.7) / 7)

# Timestamp formats the contract allows: (separator, has fraction, suffix, UTC offset in ms).
# Code 5 prints microseconds (its suffix completes the milliseconds); 6 and 7 carry an offset,
# so their text is the local time of the same instant.
_TS_FORMATS: tuple[tuple[str, bool, str, int], ...] = (
    (" ", False, "", 0),  # 2026-11-23 14:05:09
    (" ", True, "", 0),  # 2026-11-23 14:05:09.120
    ("T", True, "Z", 0),  # 2026-11-23T14:05:09.120Z
    ("T", False, "Z", 0),  # 2026-11-23T14:05:09Z
    ("T", True, "+00:00", 0),  # 2026-11-23T14:05:09.120+00:00
    ("T", True, "000", 0),  # 2026-11-23T14:05:09.120000
    ("T", True, "+02:00", 2 * _HOUR),  # 2026-11-23T16:05:09.120+02:00
    (" ", False, "+05:30", 330 * _MIN),  # 2026-11-23 19:35:09+05:30
)
_NO_FRACTION = np.array([not f[1] for f in _TS_FORMATS])
_PRIMARY_FORMATS = (2, 1, 4, 0, 2, 6, 3, 5, 7, 2)

_BAD_TIMESTAMPS: tuple[str, ...] = (
    "2026-13-45 10:00:00",
    "yesterday",
    "23/11/2026 14:05:09",
    "2026-11-23 25:61:00",
    "N/A",
    "2026-02-30T12:00:00Z",
)

# One random stream per kind of data, so that adding draws to one leaves the others intact.
_REGISTRY, _TASKS, _LATE, _TASK_FLAWS, _WORKFLOW, _MESSAGES, _BUSINESS = 1, 2, 3, 4, 5, 6, 7
_LOG_EVENTS, _LOG_FLAWS, _LOG_FILES = 8, 9, 10

_GZIP_LEVEL = 1  # fast: a quarter of a year's logs is about a gigabyte to compress

# Platforms at least this large (agents × days) write the logs in a second process.
_PARALLEL_MIN_AGENT_DAYS = 128


@dataclass(frozen=True)
class _Registry:
    """The agents and what happens to them over the range, as arrays indexed by agent."""

    ids: tuple[str, ...]
    cls: np.ndarray
    departments: tuple[str, ...]
    status: tuple[str, ...]
    deployed_ms: np.ndarray
    hourly_cost_usd: np.ndarray
    task_rate: np.ndarray
    active_from: np.ndarray
    active_to: np.ndarray
    outage_from: np.ndarray
    outage_to: np.ndarray
    degrade_from: np.ndarray
    degrade_len: np.ndarray
    moved_from: tuple[str | None, ...]
    moved_until: np.ndarray
    hb_phase: np.ndarray
    res_phase: np.ndarray
    fmt: np.ndarray
    extra: tuple[str, ...]


@dataclass(frozen=True)
class _Plan:
    """Everything both writers need: parameters, the range and the registry."""

    seed: int
    days: int
    start_ms: int
    end_ms: int
    flaw_rate: float
    gzip_share: float
    registry: _Registry


class _Budget:
    """How many flaws of each kind to inject: binomial at the flaw rate, at least one per run."""

    def __init__(self, rate: float, last_day: int) -> None:
        self.rate = min(max(rate, 0.0), 1.0)
        self.last_day = last_day
        self.done: Counter[tuple[str, str]] = Counter()

    def draw(
        self, rng: np.random.Generator, kind: tuple[str, str], population: int, day: int
    ) -> int:
        """Flaws of `kind` to inject on `day` among `population` rows or lines."""
        if self.rate <= 0.0:
            return 0
        k = int(rng.binomial(population, self.rate)) if population > 0 else 0
        if k == 0 and day == self.last_day and self.done[kind] == 0:
            k = 1
        return k

    def record(self, kind: tuple[str, str], n: int = 1) -> None:
        """Count `n` flaws of `kind` as injected."""
        self.done[kind] += n


def generate_demo(
    out_dir: Path,
    *,
    agents: int = 32,
    days: int = 30,
    seed: int = 7,
    end: date | None = None,
    flaw_rate: float = 0.0,
    gzip_share: float = 0.25,
) -> dict:
    """Write a synthetic platform under `out_dir` and return its manifest.

    Writes `agents.db`, `logs/` and `demo_manifest.json` (replacing any earlier ones there).
    The data covers `[end - days, end)`; `end` defaults to today's UTC date. `flaw_rate` is the
    rate of each kind of flaw (each rule of each source, redelivered files, duplicated events),
    with at least one of each kind for any rate above 0. `gzip_share` of the log files are
    gzip-compressed. The same `(seed, end, parameters)` always gives the same bytes.

    The manifest's keys: `parameters` (with the range's `start`), `rows` and `valid_rows` per
    table, `events` (valid, distinct log events per type), `log_lines` (every line of every
    file), `files`, `bad_input` ({source: {rule: count}} for every source of `SOURCES` and rule
    of `RULES`) and `bad_input_total`, `duplicated_log_files`, `duplicate_events` (lines
    repeating an earlier event: `duplicate_events_in_file` + `duplicate_events_redelivered`),
    `restated_business_figures`, `restatement_ties`, `late_rows`, `unknown_agent_rows`,
    `department_mismatches`, `other_event_lines` and `special_agents` (who failed, retired,
    degrades, has the outage, was deployed late, moved; the unknown agent ids).
    """
    if agents < 1 or days < 1 or seed < 0:
        raise ValueError("agents and days must be at least 1, seed must not be negative")
    if not 0.0 <= flaw_rate <= 1.0 or not 0.0 <= gzip_share <= 1.0:
        raise ValueError("flaw_rate and gzip_share must lie in [0, 1]")
    end = end or datetime.now(UTC).date()
    if end - timedelta(days=days) <= date(1970, 1, 1) or end.year >= 2199:
        raise ValueError("the data must lie between 1970 and 2198")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (out_dir / "agents.db", out_dir / "demo_manifest.json"):
        stale.unlink(missing_ok=True)
    shutil.rmtree(out_dir / "logs", ignore_errors=True)

    end_ms = int(datetime(end.year, end.month, end.day, tzinfo=UTC).timestamp() * _S)
    start_ms = end_ms - days * _DAY
    plan = _Plan(
        seed=seed,
        days=days,
        start_ms=start_ms,
        end_ms=end_ms,
        flaw_rate=float(flaw_rate),
        gzip_share=float(gzip_share),
        registry=_registry(agents, days, start_ms, end_ms, seed),
    )
    shards = _log_shards(days)
    if agents * days >= _PARALLEL_MIN_AGENT_DAYS:
        # Creating a small file costs the kernel more than formatting it: two log writers
        # and the database writer keep both cores busy.
        workers = [_start_log_writer(plan, out_dir / "logs", shard) for shard in shards]
        try:
            parts = [_write_database(plan, out_dir / "agents.db")]
            parts += [_finish_log_writer(worker) for worker in workers]
        except BaseException:
            for worker in workers:
                worker.kill()
                worker.wait()
            raise
    else:
        parts = [_write_database(plan, out_dir / "agents.db")]
        parts += [_write_logs(plan, out_dir / "logs", shard) for shard in shards]

    manifest = _manifest(plan, agents, end, parts)
    (out_dir / "demo_manifest.json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return manifest


# --------------------------------------------------------------------------- registry


def _rng(seed: int, day: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, day + 1, stream])


def _registry(n: int, days: int, start_ms: int, end_ms: int, seed: int) -> _Registry:
    """The agents: classes dealt out in turn, a few with a story (failed, retired, ...)."""
    rng = _rng(seed, -1, _REGISTRY)
    span = end_ms - start_ms
    cls = np.arange(n) % len(_CLASSES)
    seen: Counter[int] = Counter()
    ids = []
    for c in cls.tolist():
        seen[c] += 1
        ids.append(f"{_CLASSES[c].prefix}-{seen[c]:02d}")
    departments = [_CLASSES[c].department for c in cls.tolist()]
    status = ["deployed"] * n
    deployed = start_ms + rng.integers(0, 600, n) * _S
    cost = np.round(
        np.array([_CLASSES[c].hourly_cost_usd for c in cls]) * rng.uniform(0.9, 1.1, n), 3
    )
    rate = np.array([_CLASSES[c].tasks_per_min for c in cls]) * rng.uniform(0.9, 1.1, n)
    active_to = np.full(n, end_ms, dtype=np.int64)
    outage_from = np.zeros(n, dtype=np.int64)
    outage_to = np.zeros(n, dtype=np.int64)
    degrade_from = np.full(n, _FAR, dtype=np.int64)
    degrade_len = np.ones(n, dtype=np.int64)
    moved_from: list[str | None] = [None] * n
    moved_until = np.zeros(n, dtype=np.int64)

    def minute(ms: float) -> int:
        return start_ms + int((ms - start_ms) // _MIN) * _MIN

    if n >= 2:  # degrades over the last 60 % of the range
        degrade_from[1] = start_ms + int(0.4 * span)
        degrade_len[1] = span - int(0.4 * span)
    if n >= 12:
        degrade_from[7] = start_ms + int(0.5 * span)
        degrade_len[7] = span - int(0.5 * span)
    if n >= 3:  # five hours without heartbeats or tasks
        outage_from[2] = start_ms + int(days * 0.45) * _DAY + 9 * _HOUR + 17 * _MIN
        outage_to[2] = min(outage_from[2] + 5 * _HOUR, end_ms)
    if n >= 5:  # moved from another department a few hours into the range
        moved_from[3] = DEPARTMENTS[(DEPARTMENTS.index(departments[3]) + 1) % len(DEPARTMENTS)]
        moved_until[3] = start_ms + min(6 * _HOUR, span // 4)
    if n >= 6:
        status[n - 1] = "failed"
        status[n - 2] = "retired"
        active_to[n - 2] = minute(start_ms + 0.65 * span) + int(rng.integers(1, 59)) * _S
    if n >= 8:
        deployed[n - 3] = minute(start_ms + 0.5 * span) + int(rng.integers(0, 3600)) * _S
    if n >= 12:
        deployed[n - 4] = minute(start_ms + 0.8 * span) + int(rng.integers(0, 3600)) * _S
    active_from = deployed.copy()
    if n >= 6:
        active_to[n - 1] = active_from[n - 1]

    hb_phase = rng.integers(1_000, 58_001, n)
    res_phase = rng.integers(0, 5, n) * _MIN + rng.integers(1_000, 58_001, n)
    fmt = np.array([_PRIMARY_FORMATS[i % len(_PRIMARY_FORMATS)] for i in range(n)], np.int8)
    extra = tuple(f', "host": "worker-{i % 7 + 1:02d}"' if i % 3 == 1 else "" for i in range(n))
    return _Registry(
        ids=tuple(ids),
        cls=cls,
        departments=tuple(departments),
        status=tuple(status),
        deployed_ms=deployed,
        hourly_cost_usd=cost,
        task_rate=rate,
        active_from=active_from,
        active_to=active_to,
        outage_from=outage_from,
        outage_to=outage_to,
        degrade_from=degrade_from,
        degrade_len=degrade_len,
        moved_from=tuple(moved_from),
        moved_until=moved_until,
        hb_phase=hb_phase,
        res_phase=res_phase,
        fmt=fmt,
        extra=extra,
    )


def _active(reg: _Registry, agent: np.ndarray, ms: np.ndarray) -> np.ndarray:
    """Whether each agent is up (deployed, not retired, not in its outage) at each instant."""
    in_life = (ms >= reg.active_from[agent]) & (ms < reg.active_to[agent])
    in_outage = (ms >= reg.outage_from[agent]) & (ms < reg.outage_to[agent])
    return in_life & ~in_outage


def _degradation(reg: _Registry, agent: np.ndarray, ms: np.ndarray) -> np.ndarray:
    """0 for a healthy agent, rising to 1 by the end of the range for a degrading one."""
    return np.clip((ms - reg.degrade_from[agent]) / reg.degrade_len[agent], 0.0, 1.0)


def _weekday_load(day0_ms: int) -> float:
    return 0.7 if (day0_ms // _DAY + 3) % 7 >= 5 else 1.0


# --------------------------------------------------------------------------- timestamps


def _ts_text(ms: int, code: int) -> str:
    """One instant as text in format `code` (the scalar twin of `_ts_expr`)."""
    sep, has_fraction, suffix, offset = _TS_FORMATS[code]
    local = datetime(1970, 1, 1) + timedelta(milliseconds=ms + offset)
    text = local.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
    if has_fraction:
        text += f".{local.microsecond // 1000:03d}"
    return text + suffix


@cache
def _text_tables() -> dict[str, pl.Series]:
    """Lookup tables that turn formatting into gathers: dates, times of day, fractions."""
    return {
        "date": pl.date_range(date(1970, 1, 1), date(2199, 12, 31), eager=True).dt.strftime(
            "%Y-%m-%d"
        ),
        "hms": pl.from_epoch(pl.Series(np.arange(86_400)), time_unit="s").dt.strftime("%H:%M:%S"),
        "fraction": pl.Series([f".{i:03d}" for i in range(1000)] + [""]),
        "offset": pl.Series([f[3] for f in _TS_FORMATS], dtype=pl.Int64),
        "separator": pl.Series([f[0] for f in _TS_FORMATS]),
        "suffix": pl.Series([f[2] for f in _TS_FORMATS]),
        "no_fraction": pl.Series(_NO_FRACTION.tolist()),
    }


def _ts_expr(ms: str, fmt: str) -> pl.Expr:
    """Instants (UTC epoch milliseconds in column `ms`) as text in the formats of `fmt`."""
    t = {name: pl.lit(series) for name, series in _text_tables().items()}
    code = pl.col(fmt).cast(pl.Int64)
    local = pl.col(ms) + t["offset"].gather(code)
    fraction = pl.when(t["no_fraction"].gather(code)).then(pl.lit(1000, pl.Int64))
    return pl.concat_str(
        [
            t["date"].gather(local // _DAY),
            t["separator"].gather(code),
            t["hms"].gather(local % _DAY // _S),
            t["fraction"].gather(fraction.otherwise(local % _S)),
            t["suffix"].gather(code),
        ]
    )


def _truncate(ms: np.ndarray, fmt: np.ndarray) -> np.ndarray:
    """The instants a format without fractional seconds actually says."""
    return np.where(_NO_FRACTION[fmt], ms - ms % _S, ms)


def _pick_formats(
    rng: np.random.Generator, n: int, weights: Sequence[tuple[int, float]]
) -> np.ndarray:
    """`n` format codes drawn with the given (code, weight) pairs."""
    codes = np.array([c for c, _ in weights], dtype=np.int8)
    p = np.array([w for _, w in weights])
    return codes[rng.choice(len(codes), size=n, p=p / p.sum())]


def _future(text: str) -> str:
    """The same timestamp in 2099 (28 February standing in for a 29th that 2099 lacks)."""
    text = "2099" + text[4:]
    return text.replace("2099-02-29", "2099-02-28")


def _ymd(ms: int) -> str:
    return (datetime(1970, 1, 1) + timedelta(milliseconds=ms)).strftime("%Y-%m-%d")


# --------------------------------------------------------------------------- tasks


def _day_tasks(plan: _Plan, day: int) -> dict[str, np.ndarray]:
    """The tasks finished on `day`, sorted by completion: about one per agent per minute."""
    reg = plan.registry
    rng = _rng(plan.seed, day, _TASKS)
    day0 = plan.start_ms + day * _DAY
    lam = reg.task_rate[:, None] * _HOUR_LOAD[None, :] * (60.0 * _TASK_SCALE * _weekday_load(day0))
    counts = rng.poisson(lam).ravel()
    cell = np.repeat(np.arange(counts.size), counts)
    n = cell.size
    agent = cell // 24
    ms = day0 + (cell % 24) * _HOUR + rng.integers(0, _HOUR, n)
    type_pick, noise, u = rng.random(n), rng.standard_normal(n), rng.random(n)
    partial = rng.integers(1, 8, n) * 12.5
    keep = _active(reg, agent, ms)
    order = np.argsort(ms[keep], kind="stable")
    agent, ms = agent[keep][order], ms[keep][order]
    type_pick, noise, u, partial = (a[keep][order] for a in (type_pick, noise, u, partial))

    cls = reg.cls[agent]
    deg = _degradation(reg, agent, ms)
    exec_s = _EXEC_MEDIAN[cls] * np.exp(0.55 * noise) * (1.0 + 2.5 * deg)
    p_fail = _FAIL_SHARE[cls] + 0.3 * deg
    success = np.where(u < p_fail, 0.0, np.where(u < p_fail + 0.015, partial, 100.0))
    return {
        "agent": agent,
        "ms": ms,
        "task_type": _TYPE_OFFSET[cls] + (type_pick * _TYPE_COUNT[cls]).astype(np.int64),
        "execution_time": np.maximum(np.round(exec_s, 3), 0.001),
        "success_rate": success,
    }


# --------------------------------------------------------------------------- database


def _write_database(plan: _Plan, path: Path) -> dict[str, Any]:
    """Write agents.db day by day; return rows written and flaws injected per source."""
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-131072")
        con.execute("BEGIN")
        for table, columns in TABLES.items():
            body = ", ".join(f"{name} {decl}" for name, decl in columns)
            con.execute(f"CREATE TABLE {table} ({body})")
        budget = _Budget(plan.flaw_rate, plan.days - 1)
        stats: Counter[str] = Counter()
        writer = _DatabaseWriter(plan, con, budget, stats)
        writer.agents()
        for day in range(plan.days):
            writer.day(day)
        writer.targets()
        con.execute("COMMIT")
    finally:
        con.close()
    return {"stats": dict(stats), "bad": dict(budget.done)}


def _insert(con: sqlite3.Connection, table: str, columns: Sequence[str], rows: list[tuple]) -> None:
    """Insert rows, a hundred or so per statement: half again as fast as one per statement."""
    width = len(columns)
    per = max(1, 600 // width)
    one = "(" + ", ".join("?" * width) + ")"
    head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    full = len(rows) - len(rows) % per
    if full:
        flat = list(chain.from_iterable(rows[:full]))
        step = per * width
        con.executemany(
            head + ", ".join([one] * per), (flat[i : i + step] for i in range(0, len(flat), step))
        )
    if full < len(rows):
        con.executemany(head + one, rows[full:])


def _rows(frame: pl.DataFrame) -> list[tuple]:
    """A frame's rows as tuples (faster than iter_rows for wide frames)."""
    return list(zip(*(column.to_list() for column in frame.get_columns()), strict=True))


def _scatter(rng: np.random.Generator, rows: list[tuple], extra: list[tuple]) -> list[tuple]:
    """`rows` with `extra` inserted at random places."""
    if not extra:
        return rows
    slots = np.sort(rng.integers(0, len(rows) + 1, len(extra)))
    out: list[tuple] = []
    last = 0
    for slot, row in zip(slots.tolist(), extra, strict=True):
        out.extend(rows[last:slot])
        out.append(row)
        last = slot
    out.extend(rows[last:])
    return out


class _DatabaseWriter:
    """Writes the operational tables, one day at a time, flaws and all."""

    def __init__(self, plan: _Plan, con: sqlite3.Connection, budget: _Budget, stats: Counter[str]):
        self.plan, self.con, self.budget, self.stats = plan, con, budget, stats
        self.reg = plan.registry
        self.late: list[tuple] = []
        self.ever_active = np.flatnonzero(self.reg.active_to > self.reg.active_from)

    def _bad(self, source: str, rule: str) -> None:
        self.budget.record((source, rule))

    # -- agents and targets

    def agents(self) -> None:
        """The registry, then its bad rows (agents nothing else refers to)."""
        reg = self.reg
        rows = [
            (
                reg.ids[i],
                _CLASSES[reg.cls[i]].name,
                reg.departments[i],
                _ts_text(int(reg.deployed_ms[i]), 0),
                reg.status[i],
                float(reg.hourly_cost_usd[i]),
            )
            for i in range(len(reg.ids))
        ]
        rng = _rng(self.plan.seed, -1, _TASK_FLAWS)
        bad: list[tuple] = []
        for rule in (
            "missing_field",
            "wrong_type",
            "unparseable_timestamp",
            "future_timestamp",
            "unknown_status",
        ):
            for _ in range(self.budget.draw(rng, ("agents", rule), len(rows), self.plan.days - 1)):
                number = len(bad) + 1
                deployed = _ts_text(self.plan.start_ms + number * _MIN, 0)
                row = [
                    f"bad-agent-{number:02d}",
                    "FinancialAnalysisAgent",
                    "finance",
                    deployed,
                    "deployed",
                    0.2,
                ]
                if rule == "missing_field":
                    row[3] = None
                elif rule == "wrong_type":
                    row[5] = "n/a"
                elif rule == "unparseable_timestamp":
                    row[3] = _BAD_TIMESTAMPS[number % len(_BAD_TIMESTAMPS)]
                elif rule == "future_timestamp":
                    row[3] = _future(deployed)
                else:
                    row[4] = "pending"
                bad.append(tuple(row))
                self._bad("agents", rule)
        columns = [c for c, _ in TABLES["agents"]]
        _insert(self.con, "agents", columns, rows + bad)
        self.stats["rows.agents"] += len(rows) + len(bad)

    def targets(self) -> None:
        """Targets for the last day's year only, so that other years fall back to the seed's."""
        year = int(_ymd(self.plan.end_ms - _DAY)[:4])
        rows = [
            ("revenue_usd", f"{year}-01-01", f"{year}-12-31", 55_000.0),
            ("revenue_usd", f"{year}-07-01", f"{year}-12-31", 60_000.0),
            ("cost_savings_usd", f"{year}-01-01", f"{year}-12-31", 90_000.0),
        ]
        _insert(self.con, "business_targets", [c for c, _ in TABLES["business_targets"]], rows)
        self.stats["rows.business_targets"] += len(rows)

    def day(self, day: int) -> None:
        self.tasks(day)
        self.workflows(day)
        self.messages(day)
        self.business(day)

    # -- agent_performance

    def tasks(self, day: int) -> None:
        plan, reg = self.plan, self.reg
        t = _day_tasks(plan, day)
        n = t["ms"].size
        rng = _rng(plan.seed, day, _LATE)
        fmt = _pick_formats(rng, n, [(1, 0.97), (2, 0.02), (6, 0.01)])
        agent = t["agent"]
        dept_idx = np.array([DEPARTMENTS.index(d) for d in reg.departments], dtype=np.int64)[agent]
        moved = np.array([DEPARTMENTS.index(d) if d else -1 for d in reg.moved_from], np.int64)
        is_moved = (moved[agent] >= 0) & (t["ms"] < reg.moved_until[agent])
        dept_idx = np.where(is_moved, moved[agent], dept_idx)
        self.stats["department_mismatches"] += int(is_moved.sum())

        # Late rows: a few are held back and inserted after the next day's rows.
        day_end = plan.start_ms + (day + 1) * _DAY
        late = (rng.random(n) < 0.003) & (t["ms"] < day_end - _HOUR)
        order = np.concatenate([np.flatnonzero(~late), np.flatnonzero(late)])
        frame = pl.DataFrame(
            {
                "agent": agent,
                "dept": dept_idx,
                "type": t["task_type"],
                "execution_time": t["execution_time"],
                "success_rate": t["success_rate"],
                "ms": t["ms"],
                "fmt": fmt,
            }
        )[order].select(
            pl.lit(pl.Series(reg.ids)).gather(pl.col("agent")).alias("agent_id"),
            pl.lit(pl.Series(DEPARTMENTS)).gather(pl.col("dept")).alias("department"),
            pl.lit(pl.Series(_TASK_TYPES)).gather(pl.col("type")).alias("task_type"),
            "execution_time",
            "success_rate",
            _ts_expr("ms", "fmt").alias("timestamp"),
        )
        rows = _rows(frame)
        kept = n - int(late.sum())
        rows, held = rows[:kept], rows[kept:]
        rows += self.late
        self.late = held
        if day == plan.days - 1:
            rows, self.late = rows + held, []
        self.stats["late_rows"] += len(held)

        bad = self._task_flaws(day, rows)
        rows = _scatter(_rng(plan.seed, day, _TASK_FLAWS), rows, bad)
        _insert(
            self.con, "agent_performance", [c for c, _ in TABLES["agent_performance"]][1:], rows
        )
        self.stats["rows.agent_performance"] += len(rows)

    def _task_flaws(self, day: int, rows: list[tuple]) -> list[tuple]:
        rng = _rng(self.plan.seed, day, _TASK_FLAWS)
        bad: list[tuple] = []
        if not rows:
            return bad
        for rule in (
            "missing_field",
            "wrong_type",
            "unparseable_timestamp",
            "future_timestamp",
            "out_of_range",
            "unknown_agent",
        ):
            for _ in range(self.budget.draw(rng, ("agent_performance", rule), len(rows), day)):
                row = list(rows[int(rng.integers(0, len(rows)))])
                variant = int(rng.integers(0, 3))
                if rule == "missing_field":
                    row[(3, 4, 5)[variant]] = None
                elif rule == "wrong_type":
                    row[3 + variant % 2] = ("abc", "n/a", "fast")[variant]
                elif rule == "unparseable_timestamp":
                    row[5] = _BAD_TIMESTAMPS[int(rng.integers(0, len(_BAD_TIMESTAMPS)))]
                elif rule == "future_timestamp":
                    row[5] = _future(row[5])
                elif rule == "out_of_range":
                    if variant == 0:
                        row[3] = -round(float(rng.uniform(0.1, 5.0)), 3)
                    else:
                        row[4] = (120.0, -10.0)[variant - 1]
                else:
                    row[0] = GHOST_AGENTS[variant]
                bad.append(tuple(row))
                self._bad("agent_performance", rule)
        return bad

    # -- workflow_executions

    def workflows(self, day: int) -> None:
        plan, reg = self.plan, self.reg
        rng = _rng(plan.seed, day, _WORKFLOW)
        day0 = plan.start_ms + day * _DAY
        everyone = np.arange(len(reg.ids))
        names = [w[0] for w in _WORKFLOWS]
        weights = np.array([w[3] for w in _WORKFLOWS])
        rows: list[tuple] = []
        for hour in range(24):
            up = _active(reg, everyone, np.full(everyone.size, day0 + hour * _HOUR + _HOUR // 2))
            for _ in range(int(rng.poisson(0.125 * up.sum()))):
                started = day0 + hour * _HOUR + int(rng.integers(0, _HOUR))
                row = self._workflow(rng, started, names, weights, len(rows) + 1, day0)
                if row is not None:
                    rows.append(row)
        if not rows and self.ever_active.size:
            row = self._workflow(rng, day0 + 12 * _HOUR, names, weights, 1, day0)
            rows = [row] if row is not None else []
        bad = self._workflow_flaws(day, rows, day0, len(rows))
        rows = _scatter(rng, rows, bad)
        _insert(
            self.con, "workflow_executions", [c for c, _ in TABLES["workflow_executions"]], rows
        )
        self.stats["rows.workflow_executions"] += len(rows)

    def _workflow(
        self,
        rng: np.random.Generator,
        started: int,
        names: list[str],
        weights: np.ndarray,
        number: int,
        day0: int,
    ) -> tuple | None:
        reg, end_ms = self.reg, self.plan.end_ms
        everyone = np.arange(len(reg.ids))
        up = everyone[_active(reg, everyone, np.full(everyone.size, started))].tolist()
        if not up:
            return None
        cumulative = np.cumsum(weights)
        w = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
        name, depts, median_s, _ = _WORKFLOWS[w]
        pool = [a for a in up if reg.departments[a] in depts] or up
        initiator = pool[int(rng.integers(0, len(pool)))]
        wanted = min(int(rng.integers(2, 6)), len(up))
        members = [initiator]
        while len(members) < wanted:
            source = pool if rng.random() < 0.75 else up
            choices = [a for a in source if a not in members] or [a for a in up if a not in members]
            members.append(choices[int(rng.integers(0, len(choices)))])
        deg = float(_degradation(reg, np.array(members), np.full(len(members), started)).max())
        # One run in fifty hangs on a slow step for hours: some are still running at the end.
        stuck = 40.0 if rng.random() < 0.02 else 1.0
        duration = int(
            median_s * _S * stuck * np.exp(0.6 * rng.standard_normal()) * (1.0 + 1.5 * deg)
        )
        u = rng.random()
        fmt = 0 if u < 0.93 else 3 if u < 0.98 else 6
        completed = started + max(duration, _S)
        if completed >= end_ms:
            status, completed_at = "running", None
            errors = int(rng.poisson(0.3))
            recovered = errors
            updated = started + int(rng.integers(0, end_ms - started))
        else:
            completed_at = completed
            if rng.random() < 0.06 + 0.3 * deg:
                status = "failed"
                errors = 1 + int(rng.poisson(1.0))
                recovered = int(rng.integers(0, errors))
            else:
                status = "completed"
                errors = int(rng.poisson(0.5))
                recovered = errors if rng.random() < 0.9 else max(errors - 1, 0)
            updated = min(completed + int(rng.integers(0, 5 * _S)), end_ms - 1)

        def text(ms: int | None) -> str | None:
            if ms is None:
                return None
            return _ts_text(ms - ms % _S if _NO_FRACTION[fmt] else ms, fmt)

        return (
            f"wf-{_ymd(day0).replace('-', '')}-{number:05d}",
            name,
            reg.ids[initiator],
            json.dumps([reg.ids[a] for a in members]),
            text(started),
            text(completed_at),
            status,
            errors,
            recovered,
            text(updated),
        )

    def _workflow_flaws(self, day: int, rows: list[tuple], day0: int, numbered: int) -> list[tuple]:
        rng = _rng(self.plan.seed, day, _TASK_FLAWS + 100)
        bad: list[tuple] = []
        if not rows:
            return bad
        for rule in (
            "missing_field",
            "wrong_type",
            "unparseable_timestamp",
            "future_timestamp",
            "out_of_range",
            "time_order",
            "unknown_status",
            "bad_participants",
            "unknown_agent",
        ):
            for _ in range(self.budget.draw(rng, ("workflow_executions", rule), len(rows), day)):
                row = list(rows[int(rng.integers(0, len(rows)))])
                row[0] = f"wf-{_ymd(day0).replace('-', '')}-{numbered + len(bad) + 1:05d}"
                variant = int(rng.integers(0, 3))
                members = json.loads(row[3])
                if rule == "missing_field":
                    row[(4, 9, 4)[variant]] = None
                elif rule == "wrong_type":
                    row[7], row[8] = (("two", 0), (2.5, 0), (1, "none"))[variant]
                elif rule == "unparseable_timestamp":
                    row[(4, 9, 9)[variant]] = _BAD_TIMESTAMPS[
                        int(rng.integers(0, len(_BAD_TIMESTAMPS)))
                    ]
                elif rule == "future_timestamp":
                    column = 5 if row[5] is not None and variant == 0 else 9
                    row[column] = _future(row[column])
                elif rule == "out_of_range":
                    row[7], row[8] = ((1, 3), (2, -1), (-1, 0))[variant]
                elif rule == "time_order":
                    row[5] = _shift_text(row[4], -timedelta(seconds=int(rng.integers(1, 600))))
                    row[6], row[7], row[8] = "completed", 0, 0
                elif rule == "unknown_status":
                    row[6] = ("cancelled", "paused", "unknown")[variant]
                elif rule == "bad_participants":
                    row[3] = (
                        ", ".join(members),
                        json.dumps({"agents": members}),
                        json.dumps([*members, 7]),
                    )[variant]
                else:
                    ghost = GHOST_AGENTS[variant]
                    row[2], row[3] = ghost, json.dumps([ghost, *members[1:]])
                bad.append(tuple(row))
                self._bad("workflow_executions", rule)
        return bad

    # -- agent_communications

    def messages(self, day: int) -> None:
        plan, reg = self.plan, self.reg
        rng = _rng(plan.seed, day, _MESSAGES)
        day0 = plan.start_ms + day * _DAY
        cand = self.ever_active
        if cand.size < 2:
            return
        lam = np.outer(np.ones(cand.size), _HOUR_LOAD) * (15.0 * _weekday_load(day0))
        counts = rng.poisson(lam).ravel()
        cell = np.repeat(np.arange(counts.size), counts)
        n = cell.size
        pos = cell // 24
        sent = day0 + (cell % 24) * _HOUR + rng.integers(0, _HOUR, n)
        receiver_pos = (pos + rng.integers(1, cand.size, n)) % cand.size
        kind = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
        # Delivery takes some 40 ms, but 2 % wait in a queue for a quarter of an hour or so:
        # those sent in the last minutes are still pending at the end.
        queued = rng.random(n) < 0.02
        typical = np.where(queued, 15 * _MIN, 40.0)
        latency = np.maximum(np.round(typical * np.exp(0.8 * rng.standard_normal(n))), 1)
        latency = latency.astype(np.int64)
        lost = rng.random(n) < 0.015
        answer = rng.random(n) < np.array([0.92, 0.3, 0.0])[kind]
        response = 900.0 * np.exp(0.6 * rng.standard_normal(n))
        settle = rng.integers(0, 200, n)
        fmt = _pick_formats(rng, n, [(2, 0.90), (1, 0.08), (7, 0.02)])

        # Agents message agents that are up: redraw a receiver that is not (yet, or any more).
        for _ in range(8):
            down = ~_active(reg, cand[receiver_pos], sent)
            if not down.any():
                break
            receiver_pos[down] = (
                pos[down] + rng.integers(1, cand.size, int(down.sum()))
            ) % cand.size
        sender, receiver = cand[pos], cand[receiver_pos]
        keep = _active(reg, sender, sent)
        order = np.argsort(sent[keep], kind="stable")
        sender, receiver, sent, kind, latency, lost, answer, response, settle, fmt = (
            a[keep][order]
            for a in (sender, receiver, sent, kind, latency, lost, answer, response, settle, fmt)
        )
        received = sent + latency
        failed = lost | ~_active(reg, receiver, np.minimum(received, plan.end_ms - 1))
        pending = ~failed & (received >= plan.end_ms)
        delivered = ~failed & ~pending
        rt = np.round(response * (1.0 + 9.0 * _degradation(reg, receiver, received))).astype(
            np.int64
        )
        responded = received + rt
        has_response = delivered & answer & (responded < plan.end_ms)
        last = np.where(has_response, responded, np.where(delivered, received, sent))
        updated = np.minimum(last + settle, plan.end_ms - 1)
        sent, received, responded, updated = (
            _truncate(a, fmt) for a in (sent, received, responded, updated)
        )
        status = np.where(failed, 0, np.where(pending, 1, 2))
        ymd = _ymd(day0).replace("-", "")
        frame = pl.DataFrame(
            {
                "seq": np.arange(1, sent.size + 1),
                "sender": sender,
                "receiver": receiver,
                "kind": kind,
                "sent": sent,
                "received": np.where(delivered, received, 0),
                "has_received": delivered,
                "responded": responded,
                "has_response": has_response,
                "status": status,
                "updated": updated,
                "fmt": fmt,
            }
        ).select(
            pl.format("msg-{}-{}", pl.lit(ymd), pl.col("seq").cast(pl.String).str.zfill(6)).alias(
                "id"
            ),
            pl.lit(pl.Series(reg.ids)).gather(pl.col("sender")).alias("sender_agent_id"),
            pl.lit(pl.Series(reg.ids)).gather(pl.col("receiver")).alias("receiver_agent_id"),
            pl.lit(pl.Series(_MESSAGE_TYPES)).gather(pl.col("kind")).alias("message_type"),
            _ts_expr("sent", "fmt").alias("sent_at"),
            pl.when(pl.col("has_received")).then(_ts_expr("received", "fmt")).alias("received_at"),
            pl.when(pl.col("has_response"))
            .then(_ts_expr("responded", "fmt"))
            .alias("responded_at"),
            pl.lit(pl.Series(["failed", "pending", "delivered"]))
            .gather(pl.col("status"))
            .alias("st"),
            _ts_expr("updated", "fmt").alias("updated_at"),
        )
        rows = _rows(frame)
        bad = self._message_flaws(day, rows, ymd)
        rows = _scatter(rng, rows, bad)
        _insert(
            self.con,
            "agent_communications",
            [c for c, _ in TABLES["agent_communications"]][1:],
            rows,
        )
        self.stats["rows.agent_communications"] += len(rows)

    def _message_flaws(self, day: int, rows: list[tuple], ymd: str) -> list[tuple]:
        rng = _rng(self.plan.seed, day, _TASK_FLAWS + 200)
        bad: list[tuple] = []
        if not rows:
            return bad
        for rule in (
            "missing_field",
            "unparseable_timestamp",
            "future_timestamp",
            "time_order",
            "unknown_status",
            "unknown_agent",
        ):
            for _ in range(self.budget.draw(rng, ("agent_communications", rule), len(rows), day)):
                row = list(rows[int(rng.integers(0, len(rows)))])
                row[0] = f"msg-{ymd}-{len(rows) + len(bad) + 1:06d}"
                variant = int(rng.integers(0, 2))
                if rule == "missing_field":
                    row[(4, 8)[variant]] = None
                elif rule == "unparseable_timestamp":
                    row[(4, 8)[variant]] = _BAD_TIMESTAMPS[
                        int(rng.integers(0, len(_BAD_TIMESTAMPS)))
                    ]
                elif rule == "future_timestamp":
                    column = 6 if row[6] is not None and variant == 0 else 8
                    row[column] = _future(row[column])
                elif rule == "time_order":
                    shift = timedelta(seconds=int(rng.integers(1, 30)))
                    if row[5] is not None and variant == 0 and row[6] is not None:
                        row[6] = _shift_text(row[5], -shift)
                    else:
                        row[5], row[6], row[7] = _shift_text(row[4], -shift), None, "delivered"
                elif rule == "unknown_status":
                    row[7] = ("queued", "bounced")[variant]
                else:
                    row[1 + variant] = GHOST_AGENTS[variant]
                bad.append(tuple(row))
                self._bad("agent_communications", rule)
        return bad

    # -- business_metrics

    def business(self, day: int) -> None:
        plan = self.plan
        rng = _rng(plan.seed, day, _BUSINESS)
        day0 = plan.start_ms + day * _DAY
        metric_date = _ymd(day0)
        present = [d for d in DEPARTMENTS if d in self.reg.departments]
        weekday = 1.2 if (day0 // _DAY + 3) % 7 < 5 else 0.5
        rows: list[tuple] = []
        recorded: list[int] = []
        for dept, metric, value in _business_figures(rng, present, weekday):
            at = day0 + 20 * _HOUR + int(rng.integers(0, 3600)) * _S
            rows.append((metric_date, dept, metric, value, _ts_text(at, 0)))
            recorded.append(at)

        # Restatements: a later figure for the same key; sometimes recorded at the same second.
        restated: list[tuple] = []
        for i, (_, dept, metric, value, _) in enumerate(rows):
            if not metric.endswith("_usd"):
                continue
            last = day == plan.days - 1
            ties = self.stats["restatement_ties"]
            u = rng.random()
            if u < 0.004 or (last and not ties):
                tie = True
            elif u < 0.024 or (last and self.stats["restated_business_figures"] == ties):
                tie = False
            else:
                continue
            room = (plan.end_ms - recorded[i]) // _S - 1
            if not tie and room < 600:
                continue
            at = (
                recorded[i]
                if tie
                else recorded[i] + int(rng.integers(600, min(room, 48 * 3600) + 1)) * _S
            )
            new_value = round(value * float(rng.uniform(0.9, 1.1)), 2)
            restated.append((metric_date, dept, metric, new_value, _ts_text(at, 0)))
            self.stats["restated_business_figures"] += 1
            self.stats["restatement_ties"] += int(tie)
        rows += restated

        bad: list[tuple] = []
        frng = _rng(plan.seed, day, _TASK_FLAWS + 300)
        for rule in ("missing_field", "wrong_type", "unparseable_timestamp", "future_timestamp"):
            for _ in range(self.budget.draw(frng, ("business_metrics", rule), len(rows), day)):
                row = list(rows[int(frng.integers(0, len(rows)))])
                variant = int(frng.integers(0, 2))
                if rule == "missing_field":
                    row[(3, 4)[variant]] = None
                elif rule == "wrong_type":
                    row[3] = ("n/a", "TBD")[variant]
                elif rule == "unparseable_timestamp":
                    row[4] = _BAD_TIMESTAMPS[int(frng.integers(0, len(_BAD_TIMESTAMPS)))]
                else:
                    row[4] = _future(row[4])
                bad.append(tuple(row))
                self._bad("business_metrics", rule)
        rows += bad
        _insert(self.con, "business_metrics", [c for c, _ in TABLES["business_metrics"]][1:], rows)
        self.stats["rows.business_metrics"] += len(rows)


def _shift_text(text: str, delta: timedelta) -> str:
    """Move a timestamp text by `delta`, keeping its format."""
    moved = datetime.fromisoformat(text.replace("Z", "+00:00")) + delta
    out = moved.isoformat(sep=text[10], timespec="milliseconds" if "." in text[19:] else "seconds")
    if text.endswith("Z"):
        return out.replace("+00:00", "Z")
    return out


def _business_figures(
    rng: np.random.Generator, present: list[str], weekday: float
) -> list[tuple[str, str, float]]:
    """One day's figures per department, sized to roughly (not exactly) meet the seed's targets."""

    def share(weights: dict[str, float]) -> dict[str, float]:
        have = {d: w for d, w in weights.items() if d in present} or {present[0]: 1.0}
        total = sum(have.values())
        return {d: w / total for d, w in have.items()}

    revenue = share({"finance": 0.55, "marketing": 0.45})
    pipeline = share({"marketing": 0.8, "communication": 0.2})
    savings = share({"finance": 0.2, "automation": 0.45, "operations": 0.35})

    def usd(daily: float) -> float:
        return round(daily * weekday * float(np.exp(0.3 * rng.standard_normal() - 0.045)), 2)

    out: list[tuple[str, str, float]] = []
    for dept in present:
        if dept in revenue:
            out.append((dept, "revenue_usd", usd(50_000 / 365 * 1.04 * revenue[dept])))
        if dept in pipeline:
            out.append((dept, "lead_pipeline_usd", usd(80_000 / 365 * 0.96 * pipeline[dept])))
        if dept in savings:
            out.append((dept, "cost_savings_usd", usd(220.0 * savings[dept])))
        if dept in ("finance", "business_intelligence"):
            total = int(rng.poisson((60 if dept == "finance" else 120) * weekday))
            out.append((dept, "predictions_total", float(total)))
            out.append((dept, "predictions_correct", float(rng.binomial(total, 0.86))))
        if dept == "business_intelligence":
            out.append((dept, "insights_generated", float(rng.poisson(15 * weekday))))
        if dept == "marketing":
            leads = int(rng.poisson(12 * weekday))
            out.append((dept, "leads_generated", float(leads)))
            out.append((dept, "conversions", float(rng.binomial(leads, 0.12))))
        if dept in ("communication", "marketing"):
            rate = float(np.clip(0.045 + 0.01 * rng.standard_normal(), 0.001, 1.0))
            out.append((dept, "engagement_rate", round(rate, 4)))
        if dept == "communication":
            out.append((dept, "content_published", float(rng.poisson(6 * weekday))))
            score = float(np.clip(72 + 6 * rng.standard_normal(), 0.0, 100.0))
            out.append((dept, "seo_score", round(score, 1)))
        if dept == "operations" or (dept == present[-1] and "operations" not in present):
            efficiency = float(np.clip(88 + 3 * rng.standard_normal(), 0.0, 100.0))
            out.append((dept, EXTRA_METRIC, round(efficiency, 1)))
    return out


# --------------------------------------------------------------------------- logs


def _log_shards(days: int) -> list[range]:
    """Day ranges whose logs are written independently (each with its own flaw budget)."""
    half = (days + 1) // 2
    return [range(0, half), range(half, days)] if days >= 2 else [range(days)]


def _write_logs(plan: _Plan, logs_dir: Path, days: range) -> dict[str, Any]:
    """Write the hourly JSON Lines files of `days`, day by day; return what was written."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    budget = _Budget(plan.flaw_rate, days[-1])
    stats: Counter[str] = Counter()
    for day in days:
        _write_log_day(plan, day, logs_dir, budget, stats)
    return {"stats": dict(stats), "bad": dict(budget.done)}


def _start_log_writer(plan: _Plan, logs_dir: Path, days: range) -> subprocess.Popen[bytes]:
    """Start `_write_logs` in a fresh interpreter.

    A plain subprocess rather than multiprocessing: spawn would re-run the caller's main
    script (a benchmark script without a `__main__` guard breaks), and fork is unsafe once
    Polars has started its threads.
    """
    code = f"import sys; from {__name__} import _log_writer_main; _log_writer_main()"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    worker = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    assert worker.stdin is not None
    worker.stdin.write(pickle.dumps((plan, logs_dir, days)))
    worker.stdin.close()
    return worker


def _finish_log_writer(worker: subprocess.Popen[bytes]) -> dict[str, Any]:
    """Wait for a log writer and return what it wrote."""
    assert worker.stdout is not None
    result = worker.stdout.read()
    if worker.wait() != 0:
        raise RuntimeError(f"log writer failed with exit code {worker.returncode}")
    return pickle.loads(result)


def _log_writer_main() -> None:
    """Entry point of a log writer process: arguments and result are pickled on stdin/stdout."""
    plan, logs_dir, days = pickle.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(pickle.dumps(_write_logs(plan, logs_dir, days)))
    sys.stdout.buffer.flush()


def _heartbeats(plan: _Plan, day: int, rng: np.random.Generator) -> pl.DataFrame:
    """One heartbeat a minute per agent that is up, a few hundred ms of jitter, as lines."""
    reg = plan.registry
    day0 = plan.start_ms + day * _DAY
    n_agents = len(reg.ids)
    grid = (day0 + np.arange(1440, dtype=np.int64) * _MIN)[None, :] + reg.hb_phase[:, None]
    agent = np.repeat(np.arange(n_agents), 1440)
    grid = grid.ravel()
    jitter = rng.integers(-300, 301, grid.size)
    keep = _active(reg, agent, grid - 300) & _active(reg, agent, grid + 300)
    agent, ms = agent[keep], (grid + jitter)[keep]
    n = ms.size
    fmt = _line_formats(rng, reg, agent)
    ms = _truncate(ms, fmt)
    deg = _degradation(reg, agent, ms)
    load = _HOUR_LOAD[(ms - day0) // _HOUR] * _weekday_load(day0)
    degraded = rng.random(n) < 0.01 + 0.5 * deg
    task_queue = rng.poisson(1.2 * load * reg.task_rate[agent] + 5.0 * deg)
    message_queue = rng.poisson(0.4 * load)
    idle = rng.random(n) < 0.35 / (0.5 + load)
    cls = reg.cls[agent]
    current = np.where(
        idle, -1, _TYPE_OFFSET[cls] + (rng.random(n) * _TYPE_COUNT[cls]).astype(np.int64)
    )
    sdk = rng.random(n) < 0.02
    frame = pl.DataFrame(
        {
            "agent": agent,
            "ms": ms,
            "fmt": fmt,
            "degraded": degraded,
            "task_queue": task_queue,
            "message_queue": message_queue,
            "current": current,
            "sdk": sdk,
        }
    )
    line = pl.concat_str(
        [
            pl.lit('{"ts": "'),
            _ts_expr("ms", "fmt"),
            pl.lit('", "agent_id": "'),
            pl.lit(pl.Series(reg.ids)).gather(pl.col("agent")),
            pl.lit('", "event": "heartbeat", "status": "'),
            pl.when(pl.col("degraded")).then(pl.lit("degraded")).otherwise(pl.lit("ok")),
            pl.lit('", "task_queue": '),
            pl.col("task_queue").cast(pl.String),
            pl.lit(', "message_queue": '),
            pl.col("message_queue").cast(pl.String),
            pl.lit(', "current_task_type": '),
            pl.when(pl.col("current") < 0)
            .then(pl.lit("null"))
            .otherwise(
                pl.format('"{}"', pl.lit(pl.Series(_TASK_TYPES)).gather(pl.col("current").clip(0)))
            ),
            pl.lit(pl.Series(reg.extra)).gather(pl.col("agent")),
            pl.when(pl.col("sdk")).then(pl.lit(', "sdk": "agentkit/2.4.1"')).otherwise(pl.lit("")),
            pl.lit("}"),
        ]
    )
    return frame.with_columns(kind=pl.lit(0, pl.Int8), line=line)


def _line_formats(rng: np.random.Generator, reg: _Registry, agent: np.ndarray) -> np.ndarray:
    """Each agent writes mostly its own format, sometimes another one."""
    own = rng.random(agent.size) < 0.85
    return np.where(own, reg.fmt[agent], rng.integers(0, len(_TS_FORMATS), agent.size)).astype(
        np.int8
    )


def _resources(plan: _Plan, day: int, rng: np.random.Generator) -> pl.DataFrame:
    """One CPU and memory sample every five minutes per agent that is up, as lines."""
    reg = plan.registry
    day0 = plan.start_ms + day * _DAY
    n_agents = len(reg.ids)
    grid = (
        (day0 + np.arange(288, dtype=np.int64) * 5 * _MIN)[None, :] + reg.res_phase[:, None]
    ).ravel()
    agent = np.repeat(np.arange(n_agents), 288)
    jitter = rng.integers(-300, 301, grid.size)
    keep = _active(reg, agent, grid - 300) & _active(reg, agent, grid + 300)
    agent, ms = agent[keep], (grid + jitter)[keep]
    n = ms.size
    fmt = _line_formats(rng, reg, agent)
    ms = _truncate(ms, fmt)
    deg = _degradation(reg, agent, ms)
    load = _HOUR_LOAD[(ms - day0) // _HOUR] * _weekday_load(day0)
    cpu_base = np.array([c.cpu_pct for c in _CLASSES])[reg.cls[agent]]
    mem_base = np.array([c.memory_mb for c in _CLASSES])[reg.cls[agent]]
    cpu = np.round(
        np.maximum(
            cpu_base * load**0.7 * np.exp(0.25 * rng.standard_normal(n)) * (1 + 0.5 * deg), 0.1
        ),
        1,
    )
    mem = (
        np.round(np.maximum(mem_base * (1 + 0.08 * rng.standard_normal(n)) + 200.0 * deg, 16.0) * 4)
        / 4
    )
    frame = pl.DataFrame({"agent": agent, "ms": ms, "fmt": fmt, "cpu": cpu, "mem": mem})
    line = pl.concat_str(
        [
            pl.lit('{"ts": "'),
            _ts_expr("ms", "fmt"),
            pl.lit('", "agent_id": "'),
            pl.lit(pl.Series(reg.ids)).gather(pl.col("agent")),
            pl.lit('", "event": "resource", "cpu_pct": '),
            pl.col("cpu").cast(pl.String),
            pl.lit(', "memory_mb": '),
            pl.col("mem").cast(pl.String),
            pl.lit(pl.Series(reg.extra)).gather(pl.col("agent")),
            pl.lit("}"),
        ]
    )
    return frame.with_columns(kind=pl.lit(1, pl.Int8), line=line)


def _errors_and_others(
    plan: _Plan, day: int, rng: np.random.Generator
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Error events (following the failed tasks, plus a few unrelated) and other event types."""
    reg = plan.registry
    day0 = plan.start_ms + day * _DAY
    tasks = _day_tasks(plan, day)
    success = tasks["success_rate"]
    u = rng.random(success.size)
    logged = ((success == 0) & (u < 0.85)) | ((success > 0) & (success < 100) & (u < 0.4))
    agent = tasks["agent"][logged]
    ms = tasks["ms"][logged]
    task_type = np.where(rng.random(agent.size) < 0.1, -1, tasks["task_type"][logged])

    # Errors outside any task (task_type null), and the other event types.
    n_agents = len(reg.ids)
    extra_agent = np.repeat(np.arange(n_agents), 24)
    extra_ms = (
        day0 + np.tile(np.arange(24), n_agents) * _HOUR + rng.integers(0, _HOUR, 24 * n_agents)
    )
    stray = (rng.random(extra_agent.size) < 0.03) & _active(reg, extra_agent, extra_ms)
    agent = np.concatenate([agent, extra_agent[stray]])
    ms = np.concatenate([ms, extra_ms[stray]])
    task_type = np.concatenate([task_type, np.full(int(stray.sum()), -1)])
    fmt = _line_formats(rng, reg, agent)
    ms = _truncate(ms, fmt)
    error_type = rng.choice(len(_ERRORS), size=agent.size, p=[0.35, 0.2, 0.2, 0.15, 0.1])
    errors = (
        pl.DataFrame({"agent": agent, "ms": ms, "fmt": fmt, "type": task_type, "error": error_type})
        .unique(subset=["agent", "ms"], keep="first", maintain_order=True)
        .sort("ms", maintain_order=True)
    )
    errors = errors.with_columns(
        kind=pl.lit(2, pl.Int8),
        line=pl.concat_str(
            [
                pl.lit('{"ts": "'),
                _ts_expr("ms", "fmt"),
                pl.lit('", "agent_id": "'),
                pl.lit(pl.Series(reg.ids)).gather(pl.col("agent")),
                pl.lit('", "event": "error", "task_type": '),
                pl.when(pl.col("type") < 0)
                .then(pl.lit("null"))
                .otherwise(
                    pl.format('"{}"', pl.lit(pl.Series(_TASK_TYPES)).gather(pl.col("type").clip(0)))
                ),
                pl.lit(', "error_type": "'),
                pl.lit(pl.Series([e[0] for e in _ERRORS])).gather(pl.col("error")),
                pl.lit('", "message": "'),
                pl.lit(pl.Series([e[1] for e in _ERRORS])).gather(pl.col("error")),
                pl.lit('"'),
                pl.lit(pl.Series(reg.extra)).gather(pl.col("agent")),
                pl.lit("}"),
            ]
        ),
    )

    other_ms = (
        day0 + np.tile(np.arange(24), n_agents) * _HOUR + rng.integers(0, _HOUR, 24 * n_agents)
    )
    pick = rng.random(extra_agent.size)
    is_other = ((pick < 0.01) | (pick > 0.998)) & _active(reg, extra_agent, other_ms)
    o_agent, o_ms, o_kind = (
        extra_agent[is_other],
        other_ms[is_other],
        (pick[is_other] > 0.5).astype(np.int8),
    )
    o_fmt = _line_formats(rng, reg, o_agent)
    others = pl.DataFrame(
        {"agent": o_agent, "ms": _truncate(o_ms, o_fmt), "fmt": o_fmt, "other": o_kind}
    )
    others = others.with_columns(
        kind=pl.lit(3, pl.Int8),
        line=pl.concat_str(
            [
                pl.lit('{"ts": "'),
                _ts_expr("ms", "fmt"),
                pl.lit('", "agent_id": "'),
                pl.lit(pl.Series(reg.ids)).gather(pl.col("agent")),
                pl.when(pl.col("other") == 0)
                .then(pl.lit('", "event": "debug", "message": "cache refreshed"'))
                .otherwise(pl.lit('", "event": "config_reload", "version": "2.4.1"')),
                pl.lit("}"),
            ]
        ),
    )
    return errors, others


_LINE_RULES = (
    "not_json",
    "missing_field",
    "wrong_type",
    "unparseable_timestamp",
    "future_timestamp",
    "out_of_range",
    "unknown_status",
)


def _write_log_day(
    plan: _Plan, day: int, logs_dir: Path, budget: _Budget, stats: Counter[str]
) -> None:
    """Generate, flaw and write one day's log files."""
    reg = plan.registry
    day0 = plan.start_ms + day * _DAY
    rng = _rng(plan.seed, day, _LOG_EVENTS)
    beats = _heartbeats(plan, day, rng)
    samples = _resources(plan, day, rng)
    errors, others = _errors_and_others(plan, day, rng)
    columns = ["agent", "ms", "kind", "line"]
    lines = pl.concat([f.select(columns) for f in (beats, samples, errors, others)])
    lines = lines.with_columns(
        file=pl.col("agent") * 24 + (pl.col("ms") - day0) // _HOUR,
        seq=pl.int_range(pl.len(), dtype=pl.Int64),
    )
    stats["events.heartbeat"] += beats.height
    stats["events.resource"] += samples.height
    stats["events.error"] += errors.height
    n_debug = int((others["other"] == 0).sum())
    stats["events.debug"] += n_debug
    stats["events.config_reload"] += others.height - n_debug
    stats["other_event_lines"] += others.height

    frng = _rng(plan.seed, day, _LOG_FLAWS)
    extra: list[tuple[int, int, int, int, str]] = []  # file, sort ms, kind, seq, line
    redeliver: set[int] = set()
    if plan.flaw_rate > 0 and lines.height:
        files = lines["file"].unique().sort().to_numpy()
        dirty = np.unique(lines.filter(pl.col("kind") == 3)["file"].to_numpy())
        clean = np.setdiff1d(files, dirty)
        k = budget.draw(frng, ("logs", "duplicated_files"), files.size, day)
        k = min(k, clean.size // 2 if clean.size >= 2 else 0)
        redeliver = set(frng.choice(clean, size=k, replace=False).tolist())
        budget.record(("logs", "duplicated_files"), k)

        usable = lines.filter(~pl.col("file").is_in(sorted(redeliver)) & (pl.col("kind") < 3))
        # Events duplicated inside a file: the same line again, right after the first.
        k = budget.draw(frng, ("logs", "duplicate_in_file"), lines.height, day)
        k = min(k, usable.height)
        for i in frng.choice(usable.height, size=k, replace=False).tolist():
            row = usable.row(i, named=True)
            extra.append((row["file"], row["ms"], row["kind"], row["seq"], row["line"]))
        budget.record(("logs", "duplicate_in_file"), k)
        stats["duplicate_events"] += k
        stats["duplicate_events_in_file"] += k

        # Each bad line is made from its own valid heartbeat or sample (status: heartbeats only).
        templates = usable.filter(pl.col("kind") < 2)
        is_beat = (templates["kind"] == 0).to_list()
        order = frng.permutation(templates.height).tolist()
        used = [False] * templates.height
        for rule in _LINE_RULES:
            k = budget.draw(frng, ("logs", rule), lines.height, day)
            for i in order:
                if k == 0:
                    break
                if used[i] or (rule == "unknown_status" and not is_beat[i]):
                    continue
                used[i] = True
                k -= 1
                extra.append(_bad_line(frng, rule, templates.row(i, named=True), day0))
                budget.record(("logs", rule))
        extra += _ghost_lines(plan, day, frng, budget, lines.height)

    if extra:
        lines = pl.concat(
            [
                lines.select("file", "ms", "kind", "seq", "line"),
                pl.DataFrame(
                    extra,
                    schema={
                        "file": pl.Int64,
                        "ms": pl.Int64,
                        "kind": pl.Int8,
                        "seq": pl.Int64,
                        "line": pl.String,
                    },
                    orient="row",
                ),
            ]
        )
    texts = (
        lines.sort("file", "ms", "kind", "seq", maintain_order=True)
        .group_by("file", maintain_order=True)
        .agg(pl.col("line").str.join("\n"), pl.len().alias("n"))
    )
    day_dir = logs_dir / _ymd(day0)
    day_dir.mkdir(exist_ok=True)
    names = list(reg.ids) + list(GHOST_AGENTS)
    zipped = (_rng(plan.seed, day, _LOG_FILES).random(texts.height) < plan.gzip_share).tolist()
    variant = _rng(plan.seed, day, _LOG_FILES + 100).random(texts.height).tolist()
    next_dir = logs_dir / _ymd(day0 + _DAY) if day < plan.days - 1 else day_dir
    here = str(day_dir)
    for (file, text, n), gz, v in zip(texts.iter_rows(), zipped, variant, strict=True):
        stem = f"{names[file // 24]}-{file % 24:02d}"
        data = (text + "\n").encode()
        packed = _gzip(data) if gz else data
        _put(f"{here}/{stem}.jsonl{'.gz' if gz else ''}", packed)
        stats["files.log"] += 1
        stats["files.log_gzip"] += int(gz)
        stats["log_lines"] += n
        if file in redeliver:
            # The same file delivered again: as is beside it, or recompressed a day later.
            if v < 0.5:
                _put(f"{here}/{stem}.redelivered.jsonl{'.gz' if gz else ''}", packed)
            else:
                next_dir.mkdir(exist_ok=True)
                name = f"{stem}.redelivered-{_ymd(day0)}.jsonl{'' if gz else '.gz'}"
                _put(f"{next_dir}/{name}", data if gz else _gzip(data))
                stats["files.log_gzip"] += int(not gz)
            stats["files.log"] += 1
            stats["files.redelivered"] += 1
            stats["duplicate_events"] += n
            stats["duplicate_events_redelivered"] += n
            stats["log_lines"] += n


def _gzip(data: bytes) -> bytes:
    """Gzip without a timestamp in the header, so the bytes depend on the content only."""
    return gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=0)


def _put(path: str, data: bytes) -> None:
    """Write a whole file (os-level: a third of the cost of Path.write_bytes per small file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _bad_line(
    rng: np.random.Generator, rule: str, row: dict[str, Any], day0: int
) -> tuple[int, int, int, int, str]:
    """A line breaking exactly `rule`, made from a valid heartbeat or resource sample `row`."""
    event = json.loads(row["line"])
    # Move the copy off the original's instant so it is no duplicate of it (same file hour).
    step = 29 * _S if row["kind"] == 0 else 149 * _S
    ms = (
        row["ms"] + step
        if (row["ms"] + step - day0) // _HOUR == row["file"] % 24
        else row["ms"] - step
    )
    code = _ts_code(event["ts"])
    event["ts"] = _ts_text(ms - ms % _S if _NO_FRACTION[code] else ms, code)
    beat = row["kind"] == 0
    variant = int(rng.integers(0, 3))
    if rule == "not_json":
        text = json.dumps(event)
        if variant == 0:
            text = text[: int(rng.integers(5, len(text) - 1))]
        elif variant == 1:
            text = "Traceback (most recent call last):"
        else:
            text = json.dumps(list(event.values()))
        return row["file"], ms, 9, 0, text
    if rule == "missing_field":
        del event[("ts", "agent_id", "event")[variant]]
    elif rule == "wrong_type":
        if beat:
            event[("task_queue", "task_queue", "message_queue")[variant]] = ("3", 2.5, "1")[variant]
        else:
            event[("cpu_pct", "memory_mb", "cpu_pct")[variant]] = ("high", "512MB", "n/a")[variant]
    elif rule == "unparseable_timestamp":
        event["ts"] = _BAD_TIMESTAMPS[int(rng.integers(0, len(_BAD_TIMESTAMPS)))]
    elif rule == "future_timestamp":
        event["ts"] = _future(event["ts"])
    elif rule == "out_of_range":
        if beat:
            event[("task_queue", "message_queue", "task_queue")[variant]] = (-1, -3, -2)[variant]
        else:
            event[("cpu_pct", "memory_mb", "cpu_pct")[variant]] = (-5.0, -128.0, -0.5)[variant]
    else:  # unknown_status (made from heartbeats only)
        event["status"] = ("sleeping", "unknown", "busy")[variant]
    return row["file"], ms, 9, 0, json.dumps(event)


def _ts_code(text: str) -> int:
    """The format code a timestamp text was written in."""
    for code, (sep, has_fraction, suffix, _) in enumerate(_TS_FORMATS):
        length = 19 + (4 if has_fraction else 0) + len(suffix)
        if (
            len(text) == length
            and text[10] == sep
            and text.endswith(suffix)
            and (("." in text) == has_fraction)
        ):
            return code
    raise ValueError(f"not a generated timestamp: {text!r}")


def _ghost_lines(
    plan: _Plan, day: int, rng: np.random.Generator, budget: _Budget, population: int
) -> list[tuple[int, int, int, int, str]]:
    """Heartbeats of agents the registry does not know, one a minute, in files of their own."""
    k = budget.draw(rng, ("logs", "unknown_agent"), population, day)
    k = min(k, 1440 * len(GHOST_AGENTS))
    day0 = plan.start_ms + day * _DAY
    first = int(rng.integers(0, 1440))
    n_agents = len(plan.registry.ids)
    out = []
    for j in range(k):
        ghost = j // 1440
        ms = day0 + ((first + j) % 1440) * _MIN + 30 * _S
        event = {
            "ts": _ts_text(ms, 3),
            "agent_id": GHOST_AGENTS[ghost],
            "event": "heartbeat",
            "status": "ok",
        }
        event |= {"task_queue": 0, "message_queue": 0, "current_task_type": None}
        out.append(((n_agents + ghost) * 24 + (ms - day0) // _HOUR, ms, 0, j, json.dumps(event)))
    budget.record(("logs", "unknown_agent"), k)
    return out


# --------------------------------------------------------------------------- manifest


def _manifest(plan: _Plan, agents: int, end: date, parts: list[dict[str, Any]]) -> dict:
    """What was written, and every flaw injected, in the shape tests compare against."""
    stats: Counter[str] = Counter()
    bad = {source: dict.fromkeys(RULES, 0) for source in SOURCES}
    for part in parts:
        stats.update(part["stats"])
        for (source, rule), n in part["bad"].items():
            if rule in RULES:
                bad[source][rule] += n
    rows = {table: stats[f"rows.{table}"] for table in TABLES}
    reg = plan.registry
    special: dict[str, Any] = {
        "failed": [reg.ids[i] for i, s in enumerate(reg.status) if s == "failed"],
        "retired": [
            {"agent_id": reg.ids[i], "active_until": _iso(int(reg.active_to[i]))}
            for i, s in enumerate(reg.status)
            if s == "retired"
        ],
        "degrading": [reg.ids[i] for i in np.flatnonzero(reg.degrade_from < _FAR).tolist()],
        "outage": [
            {
                "agent_id": reg.ids[i],
                "from": _iso(int(reg.outage_from[i])),
                "to": _iso(int(reg.outage_to[i])),
            }
            for i in np.flatnonzero(reg.outage_to > reg.outage_from).tolist()
        ],
        "late_deployed": [
            reg.ids[i] for i in np.flatnonzero(reg.deployed_ms >= plan.start_ms + _HOUR).tolist()
        ],
        "moved": [
            {
                "agent_id": reg.ids[i],
                "reported_department": d,
                "until": _iso(int(reg.moved_until[i])),
            }
            for i, d in enumerate(reg.moved_from)
            if d
        ],
        "unknown_agent_ids": list(GHOST_AGENTS),
    }
    return {
        "parameters": {
            "agents": agents,
            "days": plan.days,
            "seed": plan.seed,
            "end": end.isoformat(),
            "start": _ymd(plan.start_ms),
            "flaw_rate": plan.flaw_rate,
            "gzip_share": plan.gzip_share,
        },
        "rows": rows,
        "valid_rows": {t: rows[t] - sum(bad[t].values()) for t in TABLES},
        "events": {
            e: stats[f"events.{e}"]
            for e in ("heartbeat", "resource", "error", "debug", "config_reload")
        },
        "log_lines": stats["log_lines"],
        "files": {
            "database": "agents.db",
            "log_files": stats["files.log"],
            "log_files_gzip": stats["files.log_gzip"],
            "redelivered_log_files": stats["files.redelivered"],
        },
        "bad_input": bad,
        "bad_input_total": {source: sum(bad[source].values()) for source in SOURCES},
        "duplicated_log_files": stats["files.redelivered"],
        "duplicate_events": stats["duplicate_events"],
        "duplicate_events_in_file": stats["duplicate_events_in_file"],
        "duplicate_events_redelivered": stats["duplicate_events_redelivered"],
        "restated_business_figures": stats["restated_business_figures"],
        "restatement_ties": stats["restatement_ties"],
        "late_rows": stats["late_rows"],
        "unknown_agent_rows": sum(bad[source]["unknown_agent"] for source in SOURCES),
        "department_mismatches": stats["department_mismatches"],
        "other_event_lines": stats["other_event_lines"],
        "special_agents": special,
    }


def _iso(ms: int) -> str:
    return _ts_text(ms, 3)
