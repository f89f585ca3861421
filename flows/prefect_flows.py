"""Prefect flows: the same pipeline, with each stage a Prefect task.

The extract stages retry with backoff (a database or a logs share that is briefly away); the
tasks keep no cache (their inputs are large frames, and a run must always read afresh).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from flows.alerts import run_and_notify
from flows.pipeline import RunResult
from flows.settings import Settings


def prefect_stage(
    fn: Callable[..., Any], *, retries: int = 0, retry_delay_s: float = 0.0
) -> Callable[..., Any]:
    """Wrap a pipeline stage as a Prefect task: no caching, and `retries` with exponential
    backoff (delay, 4 x delay, 16 x delay, ...)."""
    return task(
        fn,
        name=fn.__name__.replace("_", "-"),
        cache_policy=NONE,
        retries=retries,
        retry_delay_seconds=exponential_backoff(retries, retry_delay_s) if retries else 0,
        persist_result=False,
    )


def exponential_backoff(retries: int, first_delay_s: float) -> list[float]:
    """Delays before each retry: first_delay_s, then four times the previous."""
    return [first_delay_s * 4**i for i in range(retries)]


@flow(name="agentkpi-pipeline", log_prints=True, persist_result=False)
def pipeline_flow(
    db_url: str | None = None,
    logs_dir: str | None = None,
    warehouse: str | None = None,
    full_refresh: bool = False,
    backfill_start: date | None = None,
    backfill_end: date | None = None,
) -> dict[str, Any]:
    """Extract what is new (or everything, with `full_refresh`), load it, recompute and check
    the marts it touches (and every period from `backfill_start` to `backfill_end`), and
    publish them atomically."""
    settings = Settings.resolve(db_url=db_url, logs_dir=logs_dir, warehouse=warehouse)
    logger = get_run_logger()
    backfill = None
    if backfill_start is not None or backfill_end is not None:
        backfill = (backfill_start or backfill_end, backfill_end or backfill_start)
    result: RunResult = run_and_notify(
        settings, stage=prefect_stage, full_refresh=full_refresh, backfill=backfill
    )
    for name, count in result.counts.items():
        logger.info(
            "%s: read %d = loaded %d + duplicates %d + quarantined %d",
            name,
            count.read,
            count.loaded,
            count.duplicates,
            count.quarantined,
        )
    for timing in result.timings:
        logger.info(
            "stage %s took %.2f s (%s rows)", timing["stage"], timing["seconds"], timing["rows"]
        )
    return {
        "run_id": result.run_id,
        "status": result.status,
        "message": result.message,
        "as_of": result.as_of.isoformat() if result.as_of else None,
        "warehouse": str(result.warehouse),
    }


@flow(name="agentkpi-report", log_prints=True, persist_result=False)
def report_flow(
    period: str = "day",
    day: date | None = None,
    warehouse: str | None = None,
    reports_dir: str | None = None,
    send: bool = False,
) -> dict[str, Any]:
    """Write the summary of one period (default: the latest complete one) from the published
    marts: HTML, Markdown and PNG charts under their stable names; with `send`, deliver it
    through the configured channels (a failed delivery is logged, never fails the flow)."""
    from flows.deliver import Channels, deliver, report_link
    from flows.report import build_report, report_message, write_report

    settings = Settings.resolve(warehouse=warehouse)
    report = build_report(settings.warehouse, period, day, settings.kpi)
    out = Path(reports_dir) if reports_dir else settings.reports_dir
    written = write_report(report, out)
    logger = get_run_logger()
    logger.info("%s written to %s", report.title, written.html)
    deliveries = []
    if send:
        channels = Channels.from_settings(settings)
        link = report_link(channels, out, written.html)
        deliveries = deliver(report_message(report, written, link), channels)
        for d in deliveries:
            logger.info(
                "%s: %s after %d attempt(s)", d.channel, "sent" if d.ok else d.error, d.attempts
            )
    return {
        "deliveries": [vars(d) for d in deliveries],
        "title": report.title,
        "html": str(written.html),
        "markdown": str(written.markdown),
        "charts": {name: str(path) for name, path in written.charts.items()},
    }
