"""Empty `core.*` tables with exactly the columns and types of docs/design.md ("Core tables")."""

import duckdb

CORE_DDL = """
CREATE SCHEMA IF NOT EXISTS core;

CREATE TABLE core.dim_agents (
    agent_id VARCHAR,
    agent_class VARCHAR,
    department VARCHAR,
    deployed_at TIMESTAMP,
    deployment_status VARCHAR,
    hourly_cost_usd DOUBLE
);

CREATE TABLE core.fct_task_runs (
    task_id BIGINT,
    agent_id VARCHAR,
    department VARCHAR,
    department_reported VARCHAR,
    task_type VARCHAR,
    execution_time_s DOUBLE,
    success_pct DOUBLE,
    completed_at TIMESTAMP
);

CREATE TABLE core.fct_workflow_runs (
    workflow_id VARCHAR,
    workflow_name VARCHAR,
    initiator_agent_id VARCHAR,
    participant_agent_ids VARCHAR[],
    started_at TIMESTAMP,
    completed_at TIMESTAMP,
    status VARCHAR,
    errors BIGINT,
    errors_recovered BIGINT,
    updated_at TIMESTAMP
);

CREATE TABLE core.fct_messages (
    message_id VARCHAR,
    message_row_id BIGINT,
    sender_agent_id VARCHAR,
    receiver_agent_id VARCHAR,
    message_type VARCHAR,
    sent_at TIMESTAMP,
    received_at TIMESTAMP,
    responded_at TIMESTAMP,
    status VARCHAR,
    updated_at TIMESTAMP
);

CREATE TABLE core.fct_business_metrics (
    metric_date DATE,
    department VARCHAR,
    metric_name VARCHAR,
    value DOUBLE,
    recorded_at TIMESTAMP,
    metric_row_id BIGINT
);

CREATE TABLE core.dim_business_targets (
    metric_name VARCHAR,
    period_start DATE,
    period_end DATE,
    target_value DOUBLE
);

CREATE TABLE core.fct_heartbeats (
    agent_id VARCHAR,
    ts TIMESTAMP,
    status VARCHAR,
    task_queue BIGINT,
    message_queue BIGINT,
    current_task_type VARCHAR
);

CREATE TABLE core.fct_resource_samples (
    agent_id VARCHAR,
    ts TIMESTAMP,
    cpu_pct DOUBLE,
    memory_mb DOUBLE
);

CREATE TABLE core.fct_agent_errors (
    agent_id VARCHAR,
    ts TIMESTAMP,
    task_type VARCHAR,
    error_type VARCHAR,
    message VARCHAR
);
"""


def create_core_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the schema `core` and its nine tables, empty."""
    con.execute(CORE_DDL)
