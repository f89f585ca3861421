"""Every flow on its schedule, in one long-lived process (`agentkpi serve`, Prefect's serve):
the pipeline hourly, the daily summary at 06:00 UTC, the weekly one on Mondays, the monthly
one on the 1st (crons from the settings). `prefect.yaml` declares the same deployments for
teams that run a Prefect server with a work pool and workers.

The schedules are created active and stay so: the process does not pause them when it stops
(Prefect's default), so a restart (or a crash) never leaves them paused.
"""

from __future__ import annotations

import os

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from flows.prefect_flows import pipeline_flow, report_flow
from flows.settings import Settings

# (deployment name, period, cron setting) of the summaries.
REPORTS = [
    ("daily-report", "day", "daily_report_cron"),
    ("weekly-report", "week", "weekly_report_cron"),
    ("monthly-report", "month", "monthly_report_cron"),
]


def deployments(settings: Settings) -> list[RunnerDeployment]:
    """The pipeline and the three summaries as deployments of this process."""
    pipeline = pipeline_flow.to_deployment(
        name="hourly",
        cron=settings.schedules["pipeline_cron"],
        paused=False,
        concurrency_limit=1,  # a run that outlasts the hour is not overlapped by the next
        # No settings in the parameters (the Prefect server keeps those, and a database URL
        # may hold a password): the runs read them from this process's environment.
        description="Extract what is new, recompute the touched periods, check, publish.",
        tags=["agentkpi"],
    )
    reports = [
        report_flow.to_deployment(
            name=name,
            cron=settings.schedules[cron],
            paused=False,
            parameters={"period": period, "send": True},
            description=f"The {period}'s summary, written and sent.",
            tags=["agentkpi"],
        )
        for name, period, cron in REPORTS
    ]
    return [pipeline, *reports]


def serve_all(settings: Settings) -> None:
    """Serve every deployment until the process is stopped. The runs inherit this process's
    environment, so the settings given to it (flags included) are exported there."""
    os.environ["AGENTKPI_DB_URL"] = settings.db_url
    os.environ["AGENTKPI_LOGS_DIR"] = str(settings.logs_dir.resolve())
    os.environ["AGENTKPI_WAREHOUSE"] = str(settings.warehouse.resolve())
    os.environ["AGENTKPI_REPORTS_DIR"] = str(settings.reports_dir.resolve())
    serve(*deployments(settings), pause_on_shutdown=False)
