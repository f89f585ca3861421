"""After each pipeline run, what is news goes out once, grouped in one message, through the
configured channels (flows/deliver.py): the rows of `marts.alerts` not notified before, the
agents whose `agent_health` turned unhealthy, or, when the run failed, its reason.

What was notified is remembered in the state database (`ops.alerts_notified`,
`ops.agent_health_seen`), so the next run does not send it again. When every channel fails,
nothing is remembered and the next run tries again. Alerts of days more than
ALERT_NEWS_DAYS before as_of are not news (a first run or a backfill would otherwise send a
year of them): they are remembered as passed over, unsent. Without a configured channel,
nothing is sent and nothing remembered.
"""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from flows.deliver import Channels, Delivery, Message, deliver
from flows.pipeline import PipelineError, RunResult, one_line, run_pipeline
from flows.settings import Settings
from warehouse.store import StateStore, state_path_for

log = logging.getLogger("agentkpi.alerts")

ALERT_NEWS_DAYS = 2


def run_and_notify(
    settings: Settings, channels: Channels | None = None, **run_args: Any
) -> RunResult:
    """`run_pipeline`, then notify what is new; a failed run is notified with its reason
    (and still raises). Notifying never fails the run."""
    channels = Channels.from_settings(settings) if channels is None else channels
    try:
        result = run_pipeline(settings, **run_args)
    except Exception as error:
        if channels.any:
            reason = str(error) if isinstance(error, PipelineError) else one_line(error)
            deliver(failure_message(reason), channels)
        raise
    try:
        notify_alerts(settings, channels)
    except Exception as error:  # e.g. the state database is locked by another run
        log.warning("alerts not notified: %s", one_line(error))
    return result


def failure_message(reason: str) -> Message:
    """The message of a failed pipeline run."""
    return Message(subject="agentkpi run failed", text=f"The pipeline run failed: {reason}")


def notify_alerts(settings: Settings, channels: Channels) -> list[Delivery]:
    """Send what is new since the last notification, once; returns what each channel did."""
    if not channels.any:
        return []
    store = StateStore(state_path_for(settings.warehouse))
    try:
        alerts = store.alerts_not_notified()
        unhealthy = store.turned_unhealthy()
        as_of = (
            store.scalar("SELECT max(as_of) FROM marts.agent_health")
            if store.has_table("marts", "agent_health")
            else None
        )
        if alerts.is_empty() or not isinstance(as_of, datetime):
            news, old = alerts, alerts.clear()
        else:
            recent = pl.col("period_start") >= as_of.date() - timedelta(days=ALERT_NEWS_DAYS)
            news, old = alerts.filter(recent), alerts.filter(~recent)
        now = datetime.now(UTC).replace(tzinfo=None)
        if news.is_empty() and unhealthy.is_empty():
            store.record_notified(old, pl.Series([False] * old.height), now, health_seen=True)
            return []
        deliveries = deliver(alert_message(news, unhealthy, as_of), channels)
        if any(d.ok for d in deliveries):
            both = pl.concat([news, old]) if old.height else news
            sent = pl.Series([True] * news.height + [False] * old.height, dtype=pl.Boolean)
            store.record_notified(both, sent, now, health_seen=True)
        return deliveries
    finally:
        store.close()


def alert_message(alerts: pl.DataFrame, unhealthy: pl.DataFrame, as_of: object) -> Message:
    """New alerts and agents turned unhealthy, in one message (text and HTML)."""
    parts = []
    if alerts.height:
        parts.append(f"{alerts.height} new alert{'s' if alerts.height != 1 else ''}")
    if unhealthy.height:
        parts.append(f"{unhealthy.height} agent{'s' if unhealthy.height != 1 else ''} unhealthy")
    subject = f"agentkpi: {', '.join(parts)}"
    lines = [f"As of {as_of}."]
    rows_html = []
    for a in alerts.iter_rows(named=True):
        comparison = "<" if a["metric"] == "success_rate" else ">"
        line = (
            f"{a['level']}: {a['agent_id']} ({a['department']}) {a['metric']} {a['value']:.3g} "
            f"{comparison} {a['threshold']:g} on {a['period_start']}"
        )
        lines.append(line)
        rows_html.append(f"<li>{html.escape(line)}</li>")
    for h in unhealthy.iter_rows(named=True):
        seconds = h["seconds_since_heartbeat"]
        since = (
            "never sent a heartbeat" if seconds is None else f"last heartbeat {seconds:,.0f} s ago"
        )
        line = f"unhealthy: {h['agent_id']} ({h['department']}), {since}"
        lines.append(line)
        rows_html.append(f"<li>{html.escape(line)}</li>")
    page = (
        f"<html><body><h2>{html.escape(subject)}</h2><p>{html.escape(lines[0])}</p>"
        f"<ul>{''.join(rows_html)}</ul></body></html>"
    )
    return Message(subject=subject, text="\n".join(lines), html=page)
