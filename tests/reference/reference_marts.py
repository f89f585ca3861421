"""An independent second computation of every mart of contract/kpis.md, in plain DuckDB SQL.

Written from the contract and docs/design.md ("Readings of the KPI contract") alone, never from
the Polars code in transforms/, so that the two can prove each other. Every mart is one SQL
query: the shared CTEs below (settings, as_of, facts by period, agent rows, uptime, agent_kpis)
followed by the mart's own CTEs. Nothing is written to the connection.

Conventions used throughout:
* Each fact is placed in its period by `date_trunc(period, <its timestamp>)` for each of the
  three grains ('day', 'week' = ISO week from Monday, 'month'): `<fact>_by_period` CTEs.
* Counts and sums over nothing are COALESCEd to 0; averages, percentiles, maxima and ratios
  stay NULL over nothing, and every ratio divides by NULLIF(denominator, 0).
* Durations are computed in integer microseconds (`epoch_us`) and divided by 1e6 once.
"""

import duckdb
import polars as pl

# --------------------------------------------------------------------------------------------
# Shared CTEs
# --------------------------------------------------------------------------------------------

_SETTINGS_AND_AS_OF = """
settings AS (
    SELECT
        CAST($heartbeat_interval_s AS DOUBLE) AS heartbeat_interval_s,
        CAST($success_green AS DOUBLE) AS success_green,
        CAST($success_red AS DOUBLE) AS success_red,
        CAST($response_green_s AS DOUBLE) AS response_green_s,
        CAST($response_red_s AS DOUBLE) AS response_red_s,
        CAST($default_revenue_target_usd AS DOUBLE) AS default_revenue_target_usd,
        CAST($default_lead_pipeline_target_usd AS DOUBLE) AS default_lead_pipeline_target_usd
),

-- contract "as_of": the latest heartbeat ts over all agents; with no heartbeat at all, the
-- latest of the other loaded timestamps (business figures and targets do not count).
timestamps_without_heartbeats AS (
    SELECT completed_at AS ts FROM core.fct_task_runs
    UNION ALL SELECT started_at FROM core.fct_workflow_runs
    UNION ALL SELECT completed_at FROM core.fct_workflow_runs
    UNION ALL SELECT sent_at FROM core.fct_messages
    UNION ALL SELECT received_at FROM core.fct_messages
    UNION ALL SELECT responded_at FROM core.fct_messages
    UNION ALL SELECT ts FROM core.fct_resource_samples
    UNION ALL SELECT ts FROM core.fct_agent_errors
),
warehouse_as_of AS (
    SELECT coalesce(
        (SELECT max(ts) FROM core.fct_heartbeats),
        (SELECT max(ts) FROM timestamps_without_heartbeats)
    ) AS as_of
),

grains (period, period_length) AS (
    VALUES ('day', INTERVAL 1 DAY), ('week', INTERVAL 7 DAY), ('month', INTERVAL 1 MONTH)
)
"""

_FACTS_BY_PERIOD = """
-- contract: "A task belongs to the period of its timestamp (completion)"; agent attributes
-- (department) come from the registry.
tasks_by_period AS (
    SELECT
        g.period,
        CAST(date_trunc(g.period, t.completed_at) AS DATE) AS period_start,
        t.agent_id,
        a.department,
        t.success_pct,
        t.execution_time_s
    FROM core.fct_task_runs AS t
    JOIN core.dim_agents AS a ON a.agent_id = t.agent_id
    CROSS JOIN grains AS g
),

-- contract: a message belongs, for its receiver, to the period of received_at.
-- A response time is responded_at - received_at (NULL while unanswered).
messages_received_by_period AS (
    SELECT
        g.period,
        CAST(date_trunc(g.period, m.received_at) AS DATE) AS period_start,
        m.receiver_agent_id AS agent_id,
        a.department,
        m.responded_at IS NOT NULL AS is_responded,
        epoch_us(m.responded_at) - epoch_us(m.received_at) AS response_time_us
    FROM core.fct_messages AS m
    JOIN core.dim_agents AS a ON a.agent_id = m.receiver_agent_id
    CROSS JOIN grains AS g
    WHERE m.received_at IS NOT NULL
),

-- ... and, for its sender, to the period of sent_at.
messages_sent_by_period AS (
    SELECT
        g.period,
        CAST(date_trunc(g.period, m.sent_at) AS DATE) AS period_start,
        m.sender_agent_id AS agent_id,
        m.status
    FROM core.fct_messages AS m
    CROSS JOIN grains AS g
),

heartbeats_by_period AS (
    SELECT
        g.period,
        CAST(date_trunc(g.period, h.ts) AS DATE) AS period_start,
        h.agent_id,
        a.department,
        h.task_queue,
        h.message_queue
    FROM core.fct_heartbeats AS h
    JOIN core.dim_agents AS a ON a.agent_id = h.agent_id
    CROSS JOIN grains AS g
),

resource_samples_by_period AS (
    SELECT
        g.period,
        CAST(date_trunc(g.period, r.ts) AS DATE) AS period_start,
        r.agent_id,
        r.cpu_pct,
        r.memory_mb
    FROM core.fct_resource_samples AS r
    CROSS JOIN grains AS g
),

agent_errors_by_period AS (
    SELECT
        g.period,
        CAST(date_trunc(g.period, e.ts) AS DATE) AS period_start,
        e.agent_id
    FROM core.fct_agent_errors AS e
    CROSS JOIN grains AS g
),

-- design.md "Participants": participant_agent_ids de-duplicated; a workflow's departments are
-- the registry departments of its participants.
workflow_participants AS (
    SELECT DISTINCT p.workflow_id, p.agent_id, a.department
    FROM (
        SELECT workflow_id, unnest(participant_agent_ids) AS agent_id
        FROM core.fct_workflow_runs
    ) AS p
    LEFT JOIN core.dim_agents AS a ON a.agent_id = p.agent_id
),
workflow_spans AS (
    SELECT
        workflow_id,
        count(DISTINCT agent_id) AS participants,
        count(DISTINCT department) AS departments
    FROM workflow_participants
    GROUP BY workflow_id
),
workflows AS (
    SELECT
        w.workflow_id,
        w.workflow_name,
        w.started_at,
        w.status,
        w.errors,
        w.errors_recovered,
        coalesce(s.participants, 0) AS participants,
        coalesce(s.departments, 0) AS departments,
        -- design.md "Finished workflow runs": those with completed_at not NULL
        (epoch_us(w.completed_at) - epoch_us(w.started_at)) / 1e6 AS duration_s
    FROM core.fct_workflow_runs AS w
    LEFT JOIN workflow_spans AS s ON s.workflow_id = w.workflow_id
),

-- contract: a workflow belongs to the period of started_at.
workflows_by_period AS (
    SELECT
        g.period,
        CAST(date_trunc(g.period, w.started_at) AS DATE) AS period_start,
        CAST(date_trunc(g.period, w.started_at) + g.period_length AS DATE) AS period_end,
        w.*
    FROM workflows AS w
    CROSS JOIN grains AS g
),

workflow_participations_by_period AS (
    SELECT w.period, w.period_start, p.agent_id, w.status
    FROM workflows_by_period AS w
    JOIN workflow_participants AS p ON p.workflow_id = w.workflow_id
)
"""

_AGENT_ROWS = """
-- design.md "Row existence": any fact naming the agent gives it a row for that fact's period:
-- a task, a message sent or received, a heartbeat, a resource sample, an error event, or a
-- workflow it participates in (by the workflow's started_at).
agent_activity AS (
    SELECT agent_id, completed_at AS ts FROM core.fct_task_runs
    UNION ALL SELECT sender_agent_id, sent_at FROM core.fct_messages
    UNION ALL SELECT receiver_agent_id, received_at FROM core.fct_messages
        WHERE received_at IS NOT NULL
    UNION ALL SELECT agent_id, ts FROM core.fct_heartbeats
    UNION ALL SELECT agent_id, ts FROM core.fct_resource_samples
    UNION ALL SELECT agent_id, ts FROM core.fct_agent_errors
    UNION ALL SELECT p.agent_id, w.started_at
        FROM workflow_participants AS p
        JOIN core.fct_workflow_runs AS w ON w.workflow_id = p.workflow_id
),

-- contract: a row for every period overlapping [date(deployed_at), as_of]. design.md: a period
-- overlaps it when period_start <= as_of and period_end > date(deployed_at), i.e. exactly when
-- it contains one of the dates date(deployed_at) .. date(as_of) listed here.
agent_days AS (
    SELECT
        a.agent_id,
        CAST(unnest(generate_series(
            CAST(CAST(a.deployed_at AS DATE) AS TIMESTAMP),
            CAST(CAST(o.as_of AS DATE) AS TIMESTAMP),
            INTERVAL 1 DAY
        )) AS DATE) AS day
    FROM core.dim_agents AS a
    CROSS JOIN warehouse_as_of AS o
    UNION
    SELECT agent_id, CAST(ts AS DATE) FROM agent_activity
),

-- One row per (period, period_start, agent_id) of marts.agent_kpis; registered agents only.
agent_periods AS (
    SELECT DISTINCT
        g.period,
        CAST(date_trunc(g.period, d.day) AS DATE) AS period_start,
        CAST(date_trunc(g.period, d.day) + g.period_length AS DATE) AS period_end,
        d.agent_id
    FROM agent_days AS d
    JOIN core.dim_agents AS a ON a.agent_id = d.agent_id
    CROSS JOIN grains AS g
)
"""

_UPTIME = """
-- contract "Uptime": a heartbeat at ts covers [ts, ts + interval). Heartbeats are merged into
-- islands (gaps and islands): a heartbeat starts a new island unless it begins before the end
-- of an earlier heartbeat of the same agent. Islands are disjoint, so the covered time of a
-- scope is the sum of the islands' overlaps with it: the union counted once.
heartbeat_intervals AS (
    SELECT
        h.agent_id,
        epoch_us(h.ts) AS start_us,
        epoch_us(h.ts) + CAST(round(s.heartbeat_interval_s * 1e6) AS BIGINT) AS end_us
    FROM core.fct_heartbeats AS h
    CROSS JOIN settings AS s
),
heartbeat_island_starts AS (
    SELECT
        agent_id,
        start_us,
        end_us,
        CASE
            WHEN start_us <= max(end_us) OVER (
                PARTITION BY agent_id ORDER BY start_us, end_us
                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
            ) THEN 0
            ELSE 1
        END AS starts_island
    FROM heartbeat_intervals
),
heartbeat_island_numbers AS (
    SELECT
        agent_id,
        start_us,
        end_us,
        sum(starts_island) OVER (
            PARTITION BY agent_id ORDER BY start_us, end_us ROWS UNBOUNDED PRECEDING
        ) AS island_no
    FROM heartbeat_island_starts
),
heartbeat_islands AS (
    SELECT agent_id, min(start_us) AS island_start_us, max(end_us) AS island_end_us
    FROM heartbeat_island_numbers
    GROUP BY agent_id, island_no
),

-- contract + design.md "Uptime": scope = [max(period_start, deployed_at), min(period_end, as_of));
-- a scope length below zero counts as zero.
uptime_scopes AS (
    SELECT
        p.period,
        p.period_start,
        p.agent_id,
        epoch_us(greatest(CAST(p.period_start AS TIMESTAMP), a.deployed_at)) AS scope_start_us,
        epoch_us(least(CAST(p.period_end AS TIMESTAMP), o.as_of)) AS scope_end_us
    FROM agent_periods AS p
    JOIN core.dim_agents AS a ON a.agent_id = p.agent_id
    CROSS JOIN warehouse_as_of AS o
),
agent_uptime AS (
    SELECT
        s.period,
        s.period_start,
        s.agent_id,
        greatest(s.scope_end_us - s.scope_start_us, 0) / 1e6 AS scope_s,
        -- the FILTER matters: DuckDB's least/greatest skip NULLs, so without it a scope with
        -- no island would count as fully covered; an empty scope (deployed after as_of)
        -- overlaps nothing, whatever islands span it
        coalesce(sum(greatest(
            least(i.island_end_us, s.scope_end_us) - greatest(i.island_start_us, s.scope_start_us),
            0
        )) FILTER (WHERE i.agent_id IS NOT NULL), 0) / 1e6 AS covered_s
    FROM uptime_scopes AS s
    LEFT JOIN heartbeat_islands AS i
        ON i.agent_id = s.agent_id
        AND i.island_start_us < s.scope_end_us
        AND i.island_end_us > s.scope_start_us
    GROUP BY s.period, s.period_start, s.agent_id, s.scope_start_us, s.scope_end_us
)
"""


def _health_status(success_rate: str, response_time_s: str) -> str:
    """SQL for contract "Health status" on two columns; needs `settings` in the FROM clause."""
    s, r = success_rate, response_time_s
    return f"""CASE
        WHEN {s} IS NULL AND {r} IS NULL THEN 'unknown'
        -- red: a known indicator in its red range (a NULL comparison is not TRUE)
        WHEN {s} < settings.success_red OR {r} > settings.response_red_s THEN 'red'
        -- green: every known indicator in its green range
        WHEN coalesce({s} >= settings.success_green, TRUE)
            AND coalesce({r} < settings.response_green_s, TRUE) THEN 'green'
        ELSE 'yellow'
    END"""


_AGENT_KPIS = f"""
agent_tasks AS (
    SELECT
        period,
        period_start,
        agent_id,
        count(*) AS tasks_total,
        count(*) FILTER (WHERE success_pct = 100) AS tasks_succeeded,
        count(*) FILTER (WHERE success_pct = 0) AS tasks_failed,
        avg(success_pct) / 100 AS success_rate,
        avg(execution_time_s) AS exec_time_avg_s,
        quantile_cont(execution_time_s, 0.5) AS exec_time_p50_s,
        quantile_cont(execution_time_s, 0.95) AS exec_time_p95_s,
        max(execution_time_s) AS exec_time_max_s
    FROM tasks_by_period
    GROUP BY period, period_start, agent_id
),
agent_messages_received AS (
    SELECT
        period,
        period_start,
        agent_id,
        count(*) AS messages_received,
        count(*) FILTER (WHERE is_responded) AS messages_responded,
        -- response_time_us is NULL for unanswered messages: avg/quantile skip them;
        -- whole microseconds are averaged before the division (exact at 2 s and 5 s)
        avg(response_time_us) / 1e6 AS response_time_avg_s,
        quantile_cont(response_time_us, 0.95) / 1e6 AS response_time_p95_s
    FROM messages_received_by_period
    GROUP BY period, period_start, agent_id
),
agent_messages_sent AS (
    SELECT
        period,
        period_start,
        agent_id,
        count(*) AS messages_sent,
        count(*) FILTER (WHERE status = 'delivered') AS messages_delivered,
        count(*) FILTER (WHERE status = 'failed') AS messages_failed
    FROM messages_sent_by_period
    GROUP BY period, period_start, agent_id
),
agent_resources AS (
    SELECT
        period,
        period_start,
        agent_id,
        avg(cpu_pct) AS cpu_avg_pct,
        max(cpu_pct) AS cpu_max_pct,
        avg(memory_mb) AS memory_avg_mb,
        max(memory_mb) AS memory_max_mb
    FROM resource_samples_by_period
    GROUP BY period, period_start, agent_id
),
agent_errors_logged AS (
    SELECT period, period_start, agent_id, count(*) AS errors_logged
    FROM agent_errors_by_period
    GROUP BY period, period_start, agent_id
),
agent_workflows AS (
    SELECT
        period,
        period_start,
        agent_id,
        count(*) AS workflows_participated,
        count(*) FILTER (WHERE status = 'completed') AS workflows_succeeded,
        count(*) FILTER (WHERE status = 'failed') AS workflows_failed
    FROM workflow_participations_by_period
    GROUP BY period, period_start, agent_id
),

agent_kpis_facts AS (
    SELECT
        p.period,
        p.period_start,
        p.period_end,
        p.agent_id,
        a.department,
        a.agent_class,
        coalesce(t.tasks_total, 0) AS tasks_total,
        coalesce(t.tasks_succeeded, 0) AS tasks_succeeded,
        coalesce(t.tasks_failed, 0) AS tasks_failed,
        t.success_rate,
        coalesce(t.tasks_failed, 0) / NULLIF(coalesce(t.tasks_total, 0), 0) AS error_rate,
        t.exec_time_avg_s,
        t.exec_time_p50_s,
        t.exec_time_p95_s,
        t.exec_time_max_s,
        coalesce(mr.messages_received, 0) AS messages_received,
        coalesce(mr.messages_responded, 0) AS messages_responded,
        mr.response_time_avg_s,
        mr.response_time_p95_s,
        coalesce(ms.messages_sent, 0) AS messages_sent,
        ms.messages_delivered / NULLIF(ms.messages_delivered + ms.messages_failed, 0)
            AS message_delivery_rate,
        -- design.md "Uptime": uptime_pct NULL when the scope length is 0; uptime_hours a sum
        u.covered_s / NULLIF(u.scope_s, 0) AS uptime_pct,
        u.covered_s / 3600 AS uptime_hours,
        r.cpu_avg_pct,
        r.cpu_max_pct,
        r.memory_avg_mb,
        r.memory_max_mb,
        coalesce(e.errors_logged, 0) AS errors_logged,
        coalesce(w.workflows_participated, 0) AS workflows_participated,
        coalesce(w.workflows_succeeded, 0) AS workflows_succeeded,
        w.workflows_succeeded / NULLIF(w.workflows_succeeded + w.workflows_failed, 0)
            AS collaboration_efficiency,
        a.hourly_cost_usd * (u.covered_s / 3600) AS operating_cost_usd
    FROM agent_periods AS p
    JOIN agent_uptime AS u USING (period, period_start, agent_id)
    LEFT JOIN agent_tasks AS t USING (period, period_start, agent_id)
    LEFT JOIN agent_messages_received AS mr USING (period, period_start, agent_id)
    LEFT JOIN agent_messages_sent AS ms USING (period, period_start, agent_id)
    LEFT JOIN agent_resources AS r USING (period, period_start, agent_id)
    LEFT JOIN agent_errors_logged AS e USING (period, period_start, agent_id)
    LEFT JOIN agent_workflows AS w USING (period, period_start, agent_id)
    JOIN core.dim_agents AS a ON a.agent_id = p.agent_id
),

agent_kpis AS (
    SELECT
        f.period,
        f.period_start,
        f.period_end,
        f.agent_id,
        f.department,
        f.agent_class,
        f.tasks_total,
        f.tasks_succeeded,
        f.tasks_failed,
        f.success_rate,
        f.error_rate,
        f.exec_time_avg_s,
        f.exec_time_p50_s,
        f.exec_time_p95_s,
        f.exec_time_max_s,
        f.messages_received,
        f.messages_responded,
        f.response_time_avg_s,
        f.response_time_p95_s,
        f.messages_sent,
        f.message_delivery_rate,
        f.uptime_pct,
        f.uptime_hours,
        f.tasks_total / NULLIF(f.uptime_hours, 0) AS tasks_per_uptime_hour,
        f.cpu_avg_pct,
        f.cpu_max_pct,
        f.memory_avg_mb,
        f.memory_max_mb,
        f.errors_logged,
        f.workflows_participated,
        f.workflows_succeeded,
        f.collaboration_efficiency,
        f.operating_cost_usd,
        f.operating_cost_usd / NULLIF(f.tasks_total, 0) AS cost_per_task_usd,
        {_health_status("f.success_rate", "f.response_time_avg_s")} AS health_status,
        -- design.md "Ranks": SQL RANK(), ties (NULL equal to NULL) share the lowest rank
        RANK() OVER (
            PARTITION BY f.period, f.period_start
            ORDER BY f.tasks_succeeded DESC, f.success_rate DESC NULLS LAST
        ) AS rank_overall,
        RANK() OVER (
            PARTITION BY f.period, f.period_start, f.department
            ORDER BY f.tasks_succeeded DESC, f.success_rate DESC NULLS LAST
        ) AS rank_in_department,
        CAST(f.period_end AS TIMESTAMP) <= o.as_of AS is_complete
    FROM agent_kpis_facts AS f
    CROSS JOIN settings
    CROSS JOIN warehouse_as_of AS o
)
"""

_SHARED_CTES = ",\n".join(
    [_SETTINGS_AND_AS_OF, _FACTS_BY_PERIOD, _AGENT_ROWS, _UPTIME, _AGENT_KPIS]
)

# --------------------------------------------------------------------------------------------
# The marts: each is the shared CTEs, then its own CTEs (may be empty), then its SELECT.
# --------------------------------------------------------------------------------------------

_AGENT_KPIS_MART = (
    "",
    """
SELECT * FROM agent_kpis ORDER BY period, period_start, agent_id
""",
)

_DEPARTMENT_KPIS_MART = (
    """
-- Which rows exist: the union of the department's agent rows. The union of the agents'
-- ranges [date(deployed_at), as_of] is [date(earliest deployed_at), as_of], and design.md adds
-- the periods where one of its agents has activity, exactly as for agent rows.
department_periods AS (
    SELECT DISTINCT period, period_start, period_end, department FROM agent_kpis
),
department_agents_total AS (
    -- registered agents of the department with deployed_at < period_end
    SELECT dp.period, dp.period_start, dp.department, count(a.agent_id) AS agents_total
    FROM department_periods AS dp
    LEFT JOIN core.dim_agents AS a
        ON a.department = dp.department AND a.deployed_at < CAST(dp.period_end AS TIMESTAMP)
    GROUP BY dp.period, dp.period_start, dp.department
),
-- agents with a task or a heartbeat in the period
active_agents AS (
    SELECT period, period_start, agent_id, department FROM tasks_by_period
    UNION
    SELECT period, period_start, agent_id, department FROM heartbeats_by_period
),
department_agents_active AS (
    SELECT period, period_start, department, count(*) AS agents_active
    FROM active_agents
    GROUP BY period, period_start, department
),
-- health counts and operating cost come from the department's agent rows
department_agent_rows AS (
    SELECT
        period,
        period_start,
        department,
        count(*) FILTER (WHERE health_status = 'green') AS agents_green,
        count(*) FILTER (WHERE health_status = 'yellow') AS agents_yellow,
        count(*) FILTER (WHERE health_status = 'red') AS agents_red,
        sum(operating_cost_usd) AS operating_cost_usd
    FROM agent_kpis
    GROUP BY period, period_start, department
),
-- every other figure from all facts of the department's agents, not from agent rows
department_tasks AS (
    SELECT
        period,
        period_start,
        department,
        count(*) AS tasks_total,
        count(*) FILTER (WHERE success_pct = 100) AS tasks_succeeded,
        count(*) FILTER (WHERE success_pct = 0) AS tasks_failed,
        avg(success_pct) / 100 AS success_rate,
        avg(execution_time_s) AS exec_time_avg_s,
        quantile_cont(execution_time_s, 0.5) AS exec_time_p50_s,
        quantile_cont(execution_time_s, 0.95) AS exec_time_p95_s
    FROM tasks_by_period
    GROUP BY period, period_start, department
),
department_responses AS (
    SELECT period, period_start, department, avg(response_time_us) / 1e6 AS response_time_avg_s
    FROM messages_received_by_period
    GROUP BY period, period_start, department
),
-- design.md "Uptime": sum of covered time / sum of scope lengths over its agents
department_uptime AS (
    SELECT
        u.period,
        u.period_start,
        a.department,
        sum(u.covered_s) / NULLIF(sum(u.scope_s), 0) AS uptime_pct
    FROM agent_uptime AS u
    JOIN core.dim_agents AS a ON a.agent_id = u.agent_id
    GROUP BY u.period, u.period_start, a.department
),
-- business figures of the department whose metric_date lies in the period (core already
-- holds one row per (metric_date, department, metric_name): restatements resolved)
department_business AS (
    SELECT
        dp.period,
        dp.period_start,
        dp.department,
        sum(b.value) FILTER (WHERE b.metric_name = 'revenue_usd') AS revenue_usd,
        sum(b.value) FILTER (WHERE b.metric_name = 'lead_pipeline_usd') AS lead_pipeline_usd,
        sum(b.value) FILTER (WHERE b.metric_name = 'cost_savings_usd') AS cost_savings_usd,
        sum(b.value) FILTER (WHERE b.metric_name = 'leads_generated') AS leads_generated,
        sum(b.value) FILTER (WHERE b.metric_name = 'conversions') AS conversions,
        sum(b.value) FILTER (WHERE b.metric_name = 'insights_generated') AS insights_generated,
        sum(b.value) FILTER (WHERE b.metric_name = 'content_published') AS content_published,
        sum(b.value) FILTER (WHERE b.metric_name = 'predictions_total') AS predictions_total,
        sum(b.value) FILTER (WHERE b.metric_name = 'predictions_correct') AS predictions_correct,
        avg(b.value) FILTER (WHERE b.metric_name = 'seo_score') AS seo_score_avg,
        avg(b.value) FILTER (WHERE b.metric_name = 'engagement_rate') AS engagement_rate_avg
    FROM department_periods AS dp
    JOIN core.fct_business_metrics AS b
        ON b.department = dp.department
        AND b.metric_date >= dp.period_start
        AND b.metric_date < dp.period_end
    GROUP BY dp.period, dp.period_start, dp.department
),
department_kpis_facts AS (
    SELECT
        dp.period,
        dp.period_start,
        dp.period_end,
        dp.department,
        n.agents_total,
        coalesce(act.agents_active, 0) AS agents_active,
        coalesce(ar.agents_green, 0) AS agents_green,
        coalesce(ar.agents_yellow, 0) AS agents_yellow,
        coalesce(ar.agents_red, 0) AS agents_red,
        coalesce(t.tasks_total, 0) AS tasks_total,
        coalesce(t.tasks_succeeded, 0) AS tasks_succeeded,
        coalesce(t.tasks_failed, 0) AS tasks_failed,
        t.success_rate,
        coalesce(t.tasks_failed, 0) / NULLIF(coalesce(t.tasks_total, 0), 0) AS error_rate,
        t.exec_time_avg_s,
        t.exec_time_p50_s,
        t.exec_time_p95_s,
        rt.response_time_avg_s,
        u.uptime_pct,
        coalesce(ar.operating_cost_usd, 0) AS operating_cost_usd,
        coalesce(b.revenue_usd, 0) AS revenue_usd,
        coalesce(b.lead_pipeline_usd, 0) AS lead_pipeline_usd,
        coalesce(b.cost_savings_usd, 0) AS cost_savings_usd,
        coalesce(b.leads_generated, 0) AS leads_generated,
        coalesce(b.conversions, 0) AS conversions,
        coalesce(b.insights_generated, 0) AS insights_generated,
        coalesce(b.content_published, 0) AS content_published,
        coalesce(b.conversions, 0) / NULLIF(coalesce(b.leads_generated, 0), 0) AS conversion_rate,
        -- sums over nothing are 0: no predictions_correct figure is 0 correct
        coalesce(b.predictions_correct, 0) / NULLIF(coalesce(b.predictions_total, 0), 0)
            AS prediction_accuracy,
        b.seo_score_avg,
        b.engagement_rate_avg
    FROM department_periods AS dp
    JOIN department_agents_total AS n USING (period, period_start, department)
    LEFT JOIN department_agents_active AS act USING (period, period_start, department)
    LEFT JOIN department_agent_rows AS ar USING (period, period_start, department)
    LEFT JOIN department_tasks AS t USING (period, period_start, department)
    LEFT JOIN department_responses AS rt USING (period, period_start, department)
    LEFT JOIN department_uptime AS u USING (period, period_start, department)
    LEFT JOIN department_business AS b USING (period, period_start, department)
)
""",
    f"""
SELECT
    f.*,
    {_health_status("f.success_rate", "f.response_time_avg_s")} AS health_status,
    RANK() OVER (
        PARTITION BY f.period, f.period_start ORDER BY f.success_rate DESC NULLS LAST
    ) AS rank_success
FROM department_kpis_facts AS f
CROSS JOIN settings
ORDER BY f.period, f.period_start, f.department
""",
)

_SYSTEM_KPIS_MART = (
    """
-- Which rows exist: the union of all agent rows (see department_periods).
system_periods AS (
    SELECT DISTINCT period, period_start, period_end FROM agent_kpis
),
system_registry AS (
    -- agents with deployed_at < period_end; of those, deployed or retired
    SELECT
        sp.period,
        sp.period_start,
        count(a.agent_id) AS agents_registered,
        count(a.agent_id) FILTER (WHERE a.deployment_status IN ('deployed', 'retired'))
            AS agents_deployed
    FROM system_periods AS sp
    LEFT JOIN core.dim_agents AS a ON a.deployed_at < CAST(sp.period_end AS TIMESTAMP)
    GROUP BY sp.period, sp.period_start
),
active_agents AS (
    SELECT period, period_start, agent_id FROM tasks_by_period
    UNION
    SELECT period, period_start, agent_id FROM heartbeats_by_period
),
system_agents_active AS (
    SELECT period, period_start, count(*) AS agents_active
    FROM active_agents
    GROUP BY period, period_start
),
system_agent_rows AS (
    SELECT
        period,
        period_start,
        count(*) FILTER (WHERE health_status = 'green') AS agents_healthy,
        sum(operating_cost_usd) AS operating_cost_usd
    FROM agent_kpis
    GROUP BY period, period_start
),
system_tasks AS (
    SELECT
        period,
        period_start,
        count(*) AS tasks_total,
        count(*) FILTER (WHERE success_pct = 0) AS tasks_failed,
        avg(success_pct) / 100 AS success_rate,
        quantile_cont(execution_time_s, 0.95) AS exec_time_p95_s
    FROM tasks_by_period
    GROUP BY period, period_start
),
system_responses AS (
    SELECT period, period_start, avg(response_time_us) / 1e6 AS response_time_avg_s
    FROM messages_received_by_period
    GROUP BY period, period_start
),
-- workflows started in the period, by the status of their latest row
system_workflows AS (
    SELECT
        period,
        period_start,
        count(*) AS workflows_started,
        count(*) FILTER (WHERE status = 'completed') AS workflows_completed,
        count(*) FILTER (WHERE status = 'failed') AS workflows_failed,
        count(*) FILTER (WHERE status = 'running') AS workflows_running,
        count(*) FILTER (WHERE departments >= 2 AND status = 'completed')
            AS cross_department_completed,
        count(*) FILTER (WHERE departments >= 2 AND status = 'failed') AS cross_department_failed,
        sum(errors) AS errors,
        sum(errors_recovered) AS errors_recovered
    FROM workflows_by_period
    GROUP BY period, period_start
),
-- cumulative: completed workflows with >= 2 distinct participants started before period_end
system_multi_agent_workflows AS (
    SELECT sp.period, sp.period_start, count(w.workflow_id) AS multi_agent_workflows_succeeded
    FROM system_periods AS sp
    LEFT JOIN workflows AS w
        ON w.status = 'completed'
        AND w.participants >= 2
        AND w.started_at < CAST(sp.period_end AS TIMESTAMP)
    GROUP BY sp.period, sp.period_start
),
system_messages AS (
    SELECT
        period,
        period_start,
        count(*) AS messages_total,
        count(*) FILTER (WHERE status = 'delivered') AS messages_delivered,
        count(*) FILTER (WHERE status = 'failed') AS messages_failed
    FROM messages_sent_by_period
    GROUP BY period, period_start
),
system_queues AS (
    SELECT
        period,
        period_start,
        avg(task_queue) AS avg_task_queue,
        avg(message_queue) AS avg_message_queue
    FROM heartbeats_by_period
    GROUP BY period, period_start
)
""",
    """
SELECT
    sp.period,
    sp.period_start,
    sp.period_end,
    r.agents_registered,
    r.agents_deployed,
    r.agents_deployed / NULLIF(r.agents_registered, 0) AS deployment_success_rate,
    coalesce(act.agents_active, 0) AS agents_active,
    coalesce(ar.agents_healthy, 0) AS agents_healthy,
    coalesce(t.tasks_total, 0) AS tasks_total,
    t.success_rate,
    coalesce(t.tasks_failed, 0) / NULLIF(coalesce(t.tasks_total, 0), 0) AS error_rate,
    t.exec_time_p95_s,
    rt.response_time_avg_s,
    coalesce(w.workflows_started, 0) AS workflows_started,
    coalesce(w.workflows_completed, 0) AS workflows_completed,
    coalesce(w.workflows_failed, 0) AS workflows_failed,
    coalesce(w.workflows_running, 0) AS workflows_running,
    w.workflows_completed / NULLIF(w.workflows_completed + w.workflows_failed, 0)
        AS workflow_completion_rate,
    mw.multi_agent_workflows_succeeded,
    w.cross_department_completed
        / NULLIF(w.cross_department_completed + w.cross_department_failed, 0)
        AS cross_department_completion_rate,
    w.errors_recovered / NULLIF(w.errors, 0) AS error_recovery_rate,
    coalesce(m.messages_total, 0) AS messages_total,
    m.messages_delivered / NULLIF(m.messages_delivered + m.messages_failed, 0)
        AS communication_success_rate,
    q.avg_task_queue,
    q.avg_message_queue,
    coalesce(ar.operating_cost_usd, 0) AS operating_cost_usd
FROM system_periods AS sp
JOIN system_registry AS r USING (period, period_start)
JOIN system_multi_agent_workflows AS mw USING (period, period_start)
LEFT JOIN system_agents_active AS act USING (period, period_start)
LEFT JOIN system_agent_rows AS ar USING (period, period_start)
LEFT JOIN system_tasks AS t USING (period, period_start)
LEFT JOIN system_responses AS rt USING (period, period_start)
LEFT JOIN system_workflows AS w USING (period, period_start)
LEFT JOIN system_messages AS m USING (period, period_start)
LEFT JOIN system_queues AS q USING (period, period_start)
ORDER BY sp.period, sp.period_start
""",
)

_WORKFLOW_KPIS_MART = (
    """
-- one row per (period, workflow_name) with a run started in it
workflow_runs AS (
    SELECT
        period,
        period_start,
        period_end,
        workflow_name,
        count(*) AS runs,
        count(*) FILTER (WHERE status = 'completed') AS completed,
        count(*) FILTER (WHERE status = 'failed') AS failed,
        count(*) FILTER (WHERE status = 'running') AS running,
        -- design.md "Finished workflow runs": duration_s is NULL unless completed_at is set
        avg(duration_s) AS duration_avg_s,
        quantile_cont(duration_s, 0.95) AS duration_p95_s,
        CAST(sum(errors) AS BIGINT) AS errors,
        CAST(sum(errors_recovered) AS BIGINT) AS errors_recovered
    FROM workflows_by_period
    GROUP BY period, period_start, period_end, workflow_name
),
-- distinct registry departments of all participants of all the runs
workflow_departments AS (
    SELECT w.period, w.period_start, w.workflow_name, count(DISTINCT p.department) AS departments
    FROM workflows_by_period AS w
    JOIN workflow_participants AS p ON p.workflow_id = w.workflow_id
    GROUP BY w.period, w.period_start, w.workflow_name
)
""",
    """
SELECT
    r.period,
    r.period_start,
    r.period_end,
    r.workflow_name,
    r.runs,
    r.completed,
    r.failed,
    r.running,
    r.completed / NULLIF(r.completed + r.failed, 0) AS completion_rate,
    r.duration_avg_s,
    r.duration_p95_s,
    coalesce(r.errors, 0) AS errors,
    coalesce(r.errors_recovered, 0) AS errors_recovered,
    r.errors_recovered / NULLIF(r.errors, 0) AS recovery_rate,
    coalesce(d.departments, 0) AS departments_involved,
    coalesce(d.departments, 0) >= 2 AS is_cross_department
FROM workflow_runs AS r
LEFT JOIN workflow_departments AS d USING (period, period_start, workflow_name)
ORDER BY r.period, r.period_start, r.workflow_name
""",
)

_BUSINESS_VALUE_MART = (
    """
-- every date from the first metric_date to the later of the last metric_date and date(as_of)
business_dates AS (
    SELECT CAST(unnest(generate_series(
        CAST(b.first_date AS TIMESTAMP),
        CAST(greatest(b.last_date, CAST(o.as_of AS DATE)) AS TIMESTAMP),
        INTERVAL 1 DAY
    )) AS DATE) AS date
    FROM (
        SELECT min(metric_date) AS first_date, max(metric_date) AS last_date
        FROM core.fct_business_metrics
    ) AS b
    CROSS JOIN warehouse_as_of AS o
),
-- one row per amount on a date; design.md: a date's operating cost is the sum of the agents'
-- `day` operating cost
daily_amounts AS (
    SELECT
        metric_date AS date,
        CASE WHEN metric_name = 'revenue_usd' THEN value ELSE 0 END AS revenue_usd,
        CASE WHEN metric_name = 'lead_pipeline_usd' THEN value ELSE 0 END AS lead_pipeline_usd,
        CASE WHEN metric_name = 'cost_savings_usd' THEN value ELSE 0 END AS cost_savings_usd,
        0 AS operating_cost_usd
    FROM core.fct_business_metrics
    UNION ALL
    SELECT period_start, 0, 0, 0, operating_cost_usd
    FROM agent_kpis
    WHERE period = 'day'
),
-- that day's figures, and year to date inclusive: every amount from 1 January of the date's year
-- (design.md: including dates before the first metric_date)
business_figures AS (
    SELECT
        d.date,
        coalesce(sum(a.revenue_usd) FILTER (WHERE a.date = d.date), 0) AS revenue_usd,
        coalesce(sum(a.lead_pipeline_usd) FILTER (WHERE a.date = d.date), 0) AS lead_pipeline_usd,
        coalesce(sum(a.cost_savings_usd) FILTER (WHERE a.date = d.date), 0) AS cost_savings_usd,
        coalesce(sum(a.operating_cost_usd) FILTER (WHERE a.date = d.date), 0)
            AS operating_cost_usd,
        coalesce(sum(a.revenue_usd), 0) AS revenue_ytd_usd,
        coalesce(sum(a.lead_pipeline_usd), 0) AS lead_pipeline_ytd_usd,
        coalesce(sum(a.cost_savings_usd), 0) AS cost_savings_ytd_usd,
        coalesce(sum(a.operating_cost_usd), 0) AS operating_cost_ytd_usd
    FROM business_dates AS d
    LEFT JOIN daily_amounts AS a
        ON a.date >= CAST(date_trunc('year', d.date) AS DATE) AND a.date <= d.date
    GROUP BY d.date
),
-- design.md "Targets": of the business_targets rows covering a date (period_end inclusive),
-- the latest period_start wins, then the earliest period_end
covering_targets AS (
    SELECT
        d.date,
        t.metric_name,
        t.target_value,
        row_number() OVER (
            PARTITION BY d.date, t.metric_name
            ORDER BY t.period_start DESC, t.period_end ASC, t.target_value DESC
        ) AS preference
    FROM business_dates AS d
    JOIN core.dim_business_targets AS t
        ON d.date >= t.period_start AND d.date <= t.period_end
    WHERE t.metric_name IN ('revenue_usd', 'lead_pipeline_usd')
),
business_targets AS (
    SELECT
        d.date,
        coalesce(
            max(c.target_value) FILTER (WHERE c.metric_name = 'revenue_usd'),
            any_value(s.default_revenue_target_usd)
        ) AS revenue_target_usd,
        coalesce(
            max(c.target_value) FILTER (WHERE c.metric_name = 'lead_pipeline_usd'),
            any_value(s.default_lead_pipeline_target_usd)
        ) AS lead_pipeline_target_usd
    FROM business_dates AS d
    CROSS JOIN settings AS s
    LEFT JOIN covering_targets AS c ON c.date = d.date AND c.preference = 1
    GROUP BY d.date
),
calendar AS (
    SELECT
        date,
        dayofyear(date) AS day_of_year,
        CAST(date_trunc('year', date) + INTERVAL 1 YEAR AS DATE)
            - CAST(date_trunc('year', date) AS DATE) AS days_in_year
    FROM business_dates
),
business_progress AS (
    SELECT
        f.*,
        t.revenue_target_usd,
        t.lead_pipeline_target_usd,
        f.revenue_ytd_usd / NULLIF(t.revenue_target_usd, 0) AS revenue_progress_pct,
        f.lead_pipeline_ytd_usd / NULLIF(t.lead_pipeline_target_usd, 0)
            AS lead_pipeline_progress_pct,
        c.day_of_year / c.days_in_year AS expected_progress_pct,
        f.revenue_ytd_usd / c.day_of_year * c.days_in_year AS revenue_projected_annual_usd
    FROM business_figures AS f
    JOIN business_targets AS t USING (date)
    JOIN calendar AS c USING (date)
)
""",
    """
SELECT
    date,
    revenue_usd,
    lead_pipeline_usd,
    cost_savings_usd,
    operating_cost_usd,
    revenue_ytd_usd,
    lead_pipeline_ytd_usd,
    cost_savings_ytd_usd,
    operating_cost_ytd_usd,
    revenue_target_usd,
    lead_pipeline_target_usd,
    revenue_progress_pct,
    lead_pipeline_progress_pct,
    expected_progress_pct,
    revenue_progress_pct >= expected_progress_pct AS revenue_on_track,
    revenue_projected_annual_usd,
    (revenue_ytd_usd + cost_savings_ytd_usd - operating_cost_ytd_usd)
        / NULLIF(operating_cost_ytd_usd, 0) AS roi
FROM business_progress
ORDER BY date
""",
)

_AGENT_HEALTH_MART = (
    """
-- design.md "agent_health": the last heartbeat is the one with the greatest ts
last_heartbeats AS (
    SELECT agent_id, ts, status, task_queue, message_queue, current_task_type
    FROM core.fct_heartbeats
    QUALIFY row_number() OVER (PARTITION BY agent_id ORDER BY ts DESC) = 1
),
-- the 24 h window (as_of - 24 h, as_of] on tasks' completed_at ...
tasks_24h AS (
    SELECT t.agent_id, avg(t.success_pct) / 100 AS success_rate_24h
    FROM core.fct_task_runs AS t
    CROSS JOIN warehouse_as_of AS o
    WHERE t.completed_at > o.as_of - INTERVAL 24 HOUR AND t.completed_at <= o.as_of
    GROUP BY t.agent_id
),
-- ... and on messages' received_at, responded messages only, for the receiving agent
responses_24h AS (
    SELECT
        m.receiver_agent_id AS agent_id,
        avg(epoch_us(m.responded_at) - epoch_us(m.received_at)) / 1e6
            AS response_time_avg_24h_s
    FROM core.fct_messages AS m
    CROSS JOIN warehouse_as_of AS o
    WHERE m.received_at > o.as_of - INTERVAL 24 HOUR
        AND m.received_at <= o.as_of
        AND m.responded_at IS NOT NULL
    GROUP BY m.receiver_agent_id
),
agent_health_facts AS (
    SELECT
        a.agent_id,
        a.department,
        h.ts AS last_heartbeat_at,
        (epoch_us(o.as_of) - epoch_us(h.ts)) / 1e6 AS seconds_since_heartbeat,
        h.status AS last_status,
        h.current_task_type,
        h.task_queue,
        h.message_queue,
        t.success_rate_24h,
        r.response_time_avg_24h_s
    FROM core.dim_agents AS a
    CROSS JOIN warehouse_as_of AS o
    LEFT JOIN last_heartbeats AS h ON h.agent_id = a.agent_id
    LEFT JOIN tasks_24h AS t ON t.agent_id = a.agent_id
    LEFT JOIN responses_24h AS r ON r.agent_id = a.agent_id
)
""",
    f"""
SELECT
    f.agent_id,
    f.department,
    f.last_heartbeat_at,
    f.seconds_since_heartbeat,
    -- the seed's is_healthy: < 60 s; false for an agent that never sent a heartbeat
    coalesce(f.seconds_since_heartbeat < 60, FALSE) AS is_healthy,
    f.last_status,
    f.current_task_type,
    f.task_queue,
    f.message_queue,
    f.success_rate_24h,
    f.response_time_avg_24h_s,
    {_health_status("f.success_rate_24h", "f.response_time_avg_24h_s")} AS health_status
FROM agent_health_facts AS f
CROSS JOIN settings
ORDER BY f.agent_id
""",
)

_ALERTS_MART = (
    """
-- design.md "Alerts": one row per (day, agent, metric) at the most severe level breached;
-- NULL indicators give none (a comparison with NULL is not TRUE)
day_agent_rows AS (
    SELECT * FROM agent_kpis WHERE period = 'day'
),
success_rate_alerts AS (
    SELECT
        d.period_start,
        d.agent_id,
        d.department,
        'success_rate' AS metric,
        CASE WHEN d.success_rate < s.success_red THEN 'critical' ELSE 'warning' END AS level,
        d.success_rate AS value,
        CASE WHEN d.success_rate < s.success_red THEN s.success_red ELSE s.success_green END
            AS threshold
    FROM day_agent_rows AS d
    CROSS JOIN settings AS s
    WHERE d.success_rate < s.success_green OR d.success_rate < s.success_red
),
response_time_alerts AS (
    SELECT
        d.period_start,
        d.agent_id,
        d.department,
        'response_time_avg_s' AS metric,
        CASE WHEN d.response_time_avg_s > s.response_red_s THEN 'critical' ELSE 'warning' END
            AS level,
        d.response_time_avg_s AS value,
        CASE
            WHEN d.response_time_avg_s > s.response_red_s THEN s.response_red_s
            ELSE s.response_green_s
        END AS threshold
    FROM day_agent_rows AS d
    CROSS JOIN settings AS s
    WHERE d.response_time_avg_s > s.response_green_s OR d.response_time_avg_s > s.response_red_s
)
""",
    """
SELECT * FROM success_rate_alerts
UNION ALL
SELECT * FROM response_time_alerts
ORDER BY period_start, agent_id, metric
""",
)

_MARTS = {
    "agent_kpis": _AGENT_KPIS_MART,
    "department_kpis": _DEPARTMENT_KPIS_MART,
    "system_kpis": _SYSTEM_KPIS_MART,
    "workflow_kpis": _WORKFLOW_KPIS_MART,
    "business_value": _BUSINESS_VALUE_MART,
    "agent_health": _AGENT_HEALTH_MART,
    "alerts": _ALERTS_MART,
}


def mart_sql(name: str) -> str:
    """The full SQL of one mart (named parameters `$heartbeat_interval_s`, ... unbound)."""
    own_ctes, select = _MARTS[name]
    ctes = _SHARED_CTES if not own_ctes.strip() else f"{_SHARED_CTES},\n{own_ctes}"
    return f"WITH\n{ctes}\n{select}"


def reference_marts(
    con: duckdb.DuckDBPyConnection,
    *,
    heartbeat_interval_s: float = 60.0,
    success_green: float = 0.95,
    success_red: float = 0.80,
    response_green_s: float = 2.0,
    response_red_s: float = 5.0,
    default_revenue_target_usd: float = 50_000.0,
    default_lead_pipeline_target_usd: float = 80_000.0,
) -> dict[str, pl.DataFrame]:
    """Every mart of contract/kpis.md computed in SQL from `con`'s `core.*` tables.

    One DataFrame per mart name, with exactly the contract's columns (period marts also carry
    `period_end` after `period_start`), sorted by the mart's grain.
    """
    params = {
        "heartbeat_interval_s": heartbeat_interval_s,
        "success_green": success_green,
        "success_red": success_red,
        "response_green_s": response_green_s,
        "response_red_s": response_red_s,
        "default_revenue_target_usd": default_revenue_target_usd,
        "default_lead_pipeline_target_usd": default_lead_pipeline_target_usd,
    }
    return {name: con.sql(mart_sql(name), params=params).pl() for name in _MARTS}
