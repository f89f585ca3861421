"""Every flow on its schedule, in one long-lived process (`agentkpi serve`, Prefect's serve):
the pipeline hourly, the daily summary at 06:00 UTC, the weekly one on Mondays, the monthly
one on the 1st (crons from the settings). `prefect.yaml` declares the same deployments for
teams that run a Prefect server with a work pool and workers.

The schedules are created active and stay so: the process does not pause them when it stops
(Prefect's default), so a restart (or a crash) never leaves them paused.
"""

from __future__ import annotations

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
        parameters={
            "db_url": settings.db_url,
            "logs_dir": str(settings.logs_dir),
            "warehouse": str(settings.warehouse),
        },
        description="Extract what is new, recompute the touched periods, check, publish.",
        tags=["agentkpi"],
    )
    reports = [
        report_flow.to_deployment(
            name=name,
            cron=settings.schedules[cron],
            paused=False,
            parameters={
                "period": period,
                "warehouse": str(settings.warehouse),
                "reports_dir": str(settings.reports_dir),
                "send": True,
            },
            description=f"The {period}'s summary, written and sent.",
            tags=["agentkpi"],
        )
        for name, period, cron in REPORTS
    ]
    return [pipeline, *reports]


def serve_all(settings: Settings) -> None:
    """Serve every deployment until the process is stopped."""
    serve(*deployments(settings), pause_on_shutdown=False)
