"""What every mart is and what every column means: the text of the column comments that BI
tools show, taken from contract/kpis.md. `docs/marts.md` is generated from the warehouse's own
comments, which come from here."""

from __future__ import annotations

MART_GRAINS: dict[str, str] = {
    "agent_kpis": "one row per (period, period_start, agent_id)",
    "department_kpis": "one row per (period, period_start, department)",
    "system_kpis": "one row per (period, period_start)",
    "workflow_kpis": "one row per (period, period_start, workflow_name)",
    "business_value": "one row per date",
    "agent_health": "one row per registered agent, as of as_of",
    "alerts": "one row per breached threshold of an agent's day",
}

MART_KEYS: dict[str, list[str]] = {
    "agent_kpis": ["period", "period_start", "agent_id"],
    "department_kpis": ["period", "period_start", "department"],
    "system_kpis": ["period", "period_start"],
    "workflow_kpis": ["period", "period_start", "workflow_name"],
    "business_value": ["date"],
    "agent_health": ["agent_id"],
    "alerts": ["period_start", "agent_id", "metric"],
}


def in_key_order(mart: str) -> str:
    """`SELECT *` from a mart, ordered by its key (the stored order is not: each run rewrites
    only the rows that changed)."""
    keys = MART_KEYS.get(mart)
    order = f" ORDER BY {', '.join(keys)}" if keys else ""
    return f"SELECT * FROM marts.{mart}{order}"


_PERIOD = {
    "period": "day (UTC date), week (ISO week from Monday) or month (calendar month)",
    "period_start": "first date of the period",
    "period_end": "first date after the period",
}
_TASKS = {
    "tasks_total": "tasks finished in the period (count)",
    "tasks_succeeded": "tasks with success_rate = 100 (count)",
    "tasks_failed": "tasks with success_rate = 0 (count)",
    "success_rate": "mean(success_rate) / 100 over the tasks (fraction 0-1)",
    "error_rate": "tasks_failed / tasks_total (fraction 0-1)",
    "exec_time_avg_s": "mean execution_time of the tasks (seconds)",
    "exec_time_p50_s": "median execution_time, linear interpolation (seconds)",
    "exec_time_p95_s": "95th percentile of execution_time, linear interpolation (seconds)",
    "exec_time_max_s": "longest execution_time (seconds)",
}
_HEALTH = (
    "green / yellow / red / unknown on success_rate (red < 0.80, green >= 0.95) and "
    "response_time_avg_s (red > 5 s, green < 2 s); unknown when neither is known"
)

COLUMN_COMMENTS: dict[str, dict[str, str]] = {
    "agent_kpis": {
        **_PERIOD,
        "agent_id": "the agent",
        "department": "the agent's department (registry)",
        "agent_class": "the agent's class (registry)",
        **_TASKS,
        "messages_received": "messages with received_at in the period, this agent receiving",
        "messages_responded": "of those, with responded_at not NULL (count)",
        "response_time_avg_s": "mean of responded_at - received_at of those (seconds)",
        "response_time_p95_s": "95th percentile of responded_at - received_at (seconds)",
        "messages_sent": "messages with sent_at in the period, this agent sending (count)",
        "message_delivery_rate": "delivered / (delivered + failed) of those sent (fraction 0-1)",
        "uptime_pct": "heartbeat-covered time / scope length (fraction 0-1)",
        "uptime_hours": "heartbeat-covered time in the scope (hours)",
        "tasks_per_uptime_hour": "tasks_total / uptime_hours (tasks per hour)",
        "cpu_avg_pct": "mean cpu_pct of the resource samples (percent of one core)",
        "cpu_max_pct": "highest cpu_pct of the resource samples (percent of one core)",
        "memory_avg_mb": "mean memory_mb of the resource samples (MB)",
        "memory_max_mb": "highest memory_mb of the resource samples (MB)",
        "errors_logged": "error log events in the period (count)",
        "workflows_participated": "workflows started in the period listing the agent (count)",
        "workflows_succeeded": "of those, status completed (count)",
        "collaboration_efficiency": "completed / (completed + failed) of those (fraction 0-1)",
        "operating_cost_usd": "hourly_cost_usd x uptime_hours (USD)",
        "cost_per_task_usd": "operating_cost_usd / tasks_total (USD)",
        "health_status": _HEALTH,
        "rank_overall": "RANK() by tasks_succeeded desc, success_rate desc (NULLs last)",
        "rank_in_department": "the same rank within the department",
        "is_complete": "period_end <= as_of",
        "covered_s": "heartbeat-covered time in the scope (seconds)",
        "scope_s": (
            "scope length: min(period_end, as_of) - max(period_start, deployed_at) (seconds)"
        ),
    },
    "department_kpis": {
        **_PERIOD,
        "department": "the department (registry)",
        "agents_total": "registered agents of the department with deployed_at < period_end",
        "agents_active": "agents with a task or a heartbeat in the period (count)",
        "agents_green": "the department's agent rows with health_status green (count)",
        "agents_yellow": "the department's agent rows with health_status yellow (count)",
        "agents_red": "the department's agent rows with health_status red (count)",
        **{
            k: v + ", over all the department's tasks"
            for k, v in _TASKS.items()
            if k != "exec_time_max_s"
        },
        "response_time_avg_s": "mean response time over all the department's responses (seconds)",
        "uptime_pct": "sum of covered time / sum of scope lengths over its agents (fraction 0-1)",
        "operating_cost_usd": "sum of its agents' operating cost (USD)",
        "revenue_usd": "sum of revenue_usd figures in the period (USD)",
        "lead_pipeline_usd": "sum of lead_pipeline_usd figures in the period (USD)",
        "cost_savings_usd": "sum of cost_savings_usd figures in the period (USD)",
        "leads_generated": "sum of leads_generated figures in the period (count)",
        "conversions": "sum of conversions figures in the period (count)",
        "insights_generated": "sum of insights_generated figures in the period (count)",
        "content_published": "sum of content_published figures in the period (count)",
        "conversion_rate": "conversions / leads_generated (fraction)",
        "prediction_accuracy": "sum(predictions_correct) / sum(predictions_total) (fraction 0-1)",
        "seo_score_avg": "mean of the daily seo_score figures (0-100)",
        "engagement_rate_avg": "mean of the daily engagement_rate figures (fraction 0-1)",
        "health_status": _HEALTH,
        "rank_success": "RANK() by success_rate desc among the period's departments (NULLs last)",
    },
    "system_kpis": {
        **_PERIOD,
        "agents_registered": "agents with deployed_at < period_end (count)",
        "agents_deployed": "of those, deployment_status deployed or retired (count)",
        "deployment_success_rate": "agents_deployed / agents_registered (fraction 0-1)",
        "agents_active": "agents with a task or a heartbeat in the period (count)",
        "agents_healthy": "agent rows of the period with health_status green (count)",
        "tasks_total": "tasks finished in the period (count)",
        "success_rate": "mean(success_rate) / 100 over all tasks (fraction 0-1)",
        "error_rate": "tasks_failed / tasks_total (fraction 0-1)",
        "exec_time_p95_s": "95th percentile of execution_time over all tasks (seconds)",
        "response_time_avg_s": "mean response time over all responses (seconds)",
        "workflows_started": "workflows started in the period (count)",
        "workflows_completed": "of those, status completed (count)",
        "workflows_failed": "of those, status failed (count)",
        "workflows_running": "of those, status running (count)",
        "workflow_completion_rate": "completed / (completed + failed) (fraction 0-1)",
        "multi_agent_workflows_succeeded": (
            "completed workflows with >= 2 participants started before period_end, ever "
            "(cumulative count)"
        ),
        "cross_department_completion_rate": (
            "completion rate over workflows whose participants span >= 2 departments (fraction 0-1)"
        ),
        "error_recovery_rate": "sum(errors_recovered) / sum(errors) (fraction 0-1)",
        "messages_total": "messages sent in the period (count)",
        "communication_success_rate": "delivered / (delivered + failed) of those (fraction 0-1)",
        "avg_task_queue": "mean heartbeat task_queue in the period (tasks)",
        "avg_message_queue": "mean heartbeat message_queue in the period (messages)",
        "operating_cost_usd": "sum of the agents' operating cost (USD)",
    },
    "workflow_kpis": {
        **_PERIOD,
        "workflow_name": "the workflow",
        "runs": "runs started in the period (count)",
        "completed": "of those, status completed (count)",
        "failed": "of those, status failed (count)",
        "running": "of those, status running (count)",
        "completion_rate": "completed / (completed + failed) (fraction 0-1)",
        "duration_avg_s": "mean completed_at - started_at over finished runs (seconds)",
        "duration_p95_s": "95th percentile of completed_at - started_at, finished runs (seconds)",
        "errors": "sum of step errors (count)",
        "errors_recovered": "sum of recovered step errors (count)",
        "recovery_rate": "errors_recovered / errors (fraction 0-1)",
        "departments_involved": "distinct departments of all participants (count)",
        "is_cross_department": "departments_involved >= 2",
    },
    "business_value": {
        "date": "the day",
        "revenue_usd": "revenue that day, all departments (USD)",
        "lead_pipeline_usd": "lead pipeline generated that day, all departments (USD)",
        "cost_savings_usd": "cost savings that day, all departments (USD)",
        "operating_cost_usd": "agents' operating cost that day (USD)",
        "revenue_ytd_usd": "revenue year to date, inclusive (USD)",
        "lead_pipeline_ytd_usd": "lead pipeline year to date, inclusive (USD)",
        "cost_savings_ytd_usd": "cost savings year to date, inclusive (USD)",
        "operating_cost_ytd_usd": "operating cost year to date, inclusive (USD)",
        "revenue_target_usd": "revenue target covering the date (business_targets, else 50,000)",
        "lead_pipeline_target_usd": "pipeline target covering the date (else 80,000) (USD)",
        "revenue_progress_pct": "revenue_ytd_usd / revenue_target_usd (fraction)",
        "lead_pipeline_progress_pct": "lead_pipeline_ytd_usd / lead_pipeline_target_usd (fraction)",
        "expected_progress_pct": "day of year / days in the year (fraction 0-1)",
        "revenue_on_track": "revenue_progress_pct >= expected_progress_pct",
        "revenue_projected_annual_usd": "revenue_ytd_usd / day of year x days in the year (USD)",
        "roi": "(revenue_ytd + cost_savings_ytd - operating_cost_ytd) / operating_cost_ytd (ratio)",
    },
    "agent_health": {
        "agent_id": "the agent (every registered agent)",
        "department": "the agent's department (registry)",
        "last_heartbeat_at": "ts of the agent's latest heartbeat (UTC)",
        "seconds_since_heartbeat": "as_of - last_heartbeat_at (seconds)",
        "is_healthy": "seconds_since_heartbeat < 60; false without any heartbeat",
        "last_status": "status of the latest heartbeat (ok / degraded)",
        "current_task_type": "current_task_type of the latest heartbeat (NULL when idle)",
        "task_queue": "task_queue of the latest heartbeat (tasks)",
        "message_queue": "message_queue of the latest heartbeat (messages)",
        "success_rate_24h": "mean(success_rate) / 100 of tasks in (as_of - 24 h, as_of]",
        "response_time_avg_24h_s": "mean response time of messages received in the 24 h (s)",
        "health_status": _HEALTH + ", on the 24 h figures",
        "as_of": "latest heartbeat ts in the warehouse: what the marts are as of (UTC)",
    },
    "alerts": {
        "period_start": "the day",
        "agent_id": "the agent",
        "department": "the agent's department (registry)",
        "metric": "success_rate or response_time_avg_s",
        "level": "critical or warning (the most severe level breached)",
        "value": "the day's value of the metric",
        "threshold": "the threshold breached (0.80 / 0.95, or 5 s / 2 s)",
    },
}
