"""The `agentkpi` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import date
from pathlib import Path

from flows.settings import DEFAULT_DATA_DIR, Settings, SettingsError


def _settings(args: argparse.Namespace, **flags: str | None) -> Settings:
    """The settings: these flags, the command's --warehouse, the environment, --config."""
    return Settings.resolve(
        flags.get("db_url"),
        flags.get("logs_dir"),
        getattr(args, "warehouse", None),
        config=args.config,
    )


def _cmd_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    width = max(len(name) for name, _, _ in settings.described())
    for name, value, origin in settings.described():
        print(f"{name:<{width}}  {value}  ({origin})")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from flows.pipeline import PipelineError, one_line

    settings = _settings(args, db_url=args.db_url, logs_dir=args.logs_dir)
    settings.check_sources()
    backfill = None
    if getattr(args, "start", None):
        backfill = (date.fromisoformat(args.start), date.fromisoformat(args.end))
        # A long backfill says how far it is.
        logging.getLogger("agentkpi").setLevel(logging.INFO)
    full_refresh = getattr(args, "full_refresh", False)
    try:
        if args.engine == "prefect":
            # Without PREFECT_API_URL Prefect starts a temporary server; its first start in a
            # new PREFECT_HOME migrates a database and can take longer than Prefect's 20 s.
            os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
            from flows.prefect_flows import pipeline_flow

            pipeline_flow(
                db_url=settings.db_url,
                logs_dir=str(settings.logs_dir),
                warehouse=str(settings.warehouse),
                full_refresh=full_refresh,
                backfill_start=backfill[0] if backfill else None,
                backfill_end=backfill[1] if backfill else None,
            )
        else:
            from flows.alerts import run_and_notify

            run_and_notify(settings, full_refresh=full_refresh, backfill=backfill)
    except PipelineError as error:
        print(f"agentkpi run failed: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # a disk full, say: still one line (the log has the rest)
        logging.getLogger("agentkpi").debug("run failed", exc_info=True)
        print(f"agentkpi run failed: {one_line(error)}", file=sys.stderr)
        return 1
    if not args.quiet:
        _print_summary(settings.warehouse)
    return 0


def _print_summary(warehouse: Path) -> None:
    from flows.summary import format_summary
    from warehouse.read import summary

    print(format_summary(summary(warehouse)))


def _cmd_summary(args: argparse.Namespace) -> int:
    _print_summary(_settings(args).warehouse)
    return 0


def _cmd_quarantine(args: argparse.Namespace) -> int:
    from warehouse.read import quarantine_summary

    held = quarantine_summary(_settings(args).warehouse)
    if held.is_empty():
        print("nothing held in quarantine")
        return 0
    width = max(len(s) for s in held["source"])
    print(f"{'source':<{width}}  {'rule':<22} {'rows':>9}  example location")
    for source, rule, rows, example in held.iter_rows():
        print(f"{source:<{width}}  {rule:<22} {rows:>9,}  {example}")
    print(f"{held['rows'].sum():,} rows held")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from flows.report import ReportError, build_report, write_report

    settings = _settings(args)
    day = date.fromisoformat(args.date) if args.date else None
    try:
        report = build_report(settings.warehouse, args.period, day, settings.kpi)
    except ReportError as error:
        print(f"agentkpi report: {error}", file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else settings.reports_dir
    written = write_report(report, out)
    print(f"{report.title}: {written.html} ({written.markdown}, {len(written.charts)} charts)")
    if args.send:
        from flows.deliver import Channels, deliver, report_link
        from flows.report import report_message

        channels = Channels.from_settings(settings)
        if not channels.any:
            print("agentkpi report: --send, but no channel is configured", file=sys.stderr)
            return 1
        link = report_link(channels, out, written.html)
        for delivery in deliver(report_message(report, written, link), channels):
            state = "sent" if delivery.ok else f"failed ({delivery.error})"
            print(f"  {delivery.channel}: {state} after {delivery.attempts} attempt(s)")
    return 0


def _cmd_docs(args: argparse.Namespace) -> int:
    from flows.settings import configuration_markdown
    from warehouse.read import marts_markdown

    Path(args.out).write_text(marts_markdown(_settings(args).warehouse))
    configuration = Path(args.out).with_name("configuration.md")
    configuration.write_text(configuration_markdown())
    print(f"written to {args.out} and {configuration}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from warehouse.read import export_marts

    written = export_marts(_settings(args).warehouse, Path(args.dir), args.format)
    for path, rows in written.items():
        print(f"{path} ({rows:,} rows)")
    return 0


# Exit code of `agentkpi status` when a source is stale, for monitors.
STALE_EXIT = 2


def _cmd_status(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    import polars as pl

    from flows.report import LATE_AFTER_S
    from transforms.summaries import late_sources
    from warehouse.read import status

    settings = _settings(args)
    state = status(settings.warehouse, args.runs)
    limits = dict(LATE_AFTER_S)
    if args.stale_after_s is not None:
        limits = dict.fromkeys(limits, float(args.stale_after_s))
    now = datetime.now(UTC).replace(tzinfo=None)
    sources = late_sources(state.freshness.lazy(), pl.lit(now), limits).collect()
    print(f"warehouse {settings.warehouse.resolve()}")
    print("last runs (rows read = loaded + duplicates + quarantined)")
    for r in state.runs.iter_rows(named=True):
        seconds = "?" if r["seconds"] is None else f"{r['seconds']:.1f} s"
        print(
            f"  {r['run_started_at']:%Y-%m-%d %H:%M:%S}  {r['run_status']:<9} {r['run_mode']:<11} "
            f"{seconds:>9}  read {r['rows_read']:,} = {r['rows_loaded']:,} + "
            f"{r['rows_duplicate']:,} + {r['rows_quarantined']:,}  {r['message'] or ''}"
        )
    print("sources (newest data loaded, age now)")
    for r in sources.iter_rows(named=True):
        age = "no data" if r["age_s"] is None else f"{r['age_s'] / 3600:,.1f} h"
        flag = f"STALE (limit {r['late_after_s'] / 3600:g} h)" if r["is_late"] else "ok"
        print(f"  {r['source']:<22} {r['newest_at']!s:<26} {age:>10}  {flag}")
    held = int(state.held["rows"].sum()) if state.held.height else 0
    print(f"quarantine: {held:,} rows held; last run: {state.failed_checks} failed checks")
    return STALE_EXIT if sources["is_late"].any() else 0


def _cmd_serve(args: argparse.Namespace) -> int:
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    from flows.serve import serve_all

    settings = _settings(args, db_url=args.db_url, logs_dir=args.logs_dir)
    settings.check_sources()
    serve_all(settings)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from flows.demo import generate_demo

    out = Path(args.out)
    if args.if_missing and (out / "agents.db").exists():
        print(f"demo sources already in {out}")
        return 0
    end = date.fromisoformat(args.end) if args.end else None
    manifest = generate_demo(
        out,
        agents=args.agents,
        days=args.days,
        seed=args.seed,
        end=end,
        flaw_rate=args.flaw_rate,
    )
    rows = manifest.get("rows", manifest.get("rows_written", {}))
    print(f"demo platform written to {out}: {rows}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `agentkpi`."""
    parser = argparse.ArgumentParser(
        prog="agentkpi", description="KPI warehouse for fleets of AI agents."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every stage")
    parser.add_argument(
        "--config", help="TOML configuration file [AGENTKPI_CONFIG; ./agentkpi.toml if present]"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the pipeline once and print a summary")
    run.add_argument("--db-url", help="operational database URL [AGENTKPI_DB_URL]")
    run.add_argument("--logs-dir", help="agent logs directory [AGENTKPI_LOGS_DIR]")
    run.add_argument("--warehouse", help="DuckDB file BI tools open [AGENTKPI_WAREHOUSE]")
    run.add_argument(
        "--engine",
        choices=["prefect", "plain"],
        default=os.environ.get("AGENTKPI_ENGINE", "prefect"),
        help="run as a Prefect flow (default) or as plain Python [AGENTKPI_ENGINE]",
    )
    run.add_argument("--quiet", action="store_true", help="do not print the summary")
    run.add_argument(
        "--full-refresh",
        action="store_true",
        help="forget the watermarks and rebuild everything from the sources",
    )
    run.set_defaults(func=_cmd_run)

    backfill = commands.add_parser(
        "backfill", help="run, and recompute every period overlapping a range of dates"
    )
    backfill.add_argument("--start", required=True, help="first date, YYYY-MM-DD")
    backfill.add_argument("--end", required=True, help="last date, YYYY-MM-DD (inclusive)")
    for flag, env in [
        ("--db-url", "DB_URL"),
        ("--logs-dir", "LOGS_DIR"),
        ("--warehouse", "WAREHOUSE"),
    ]:
        backfill.add_argument(flag, help=f"[AGENTKPI_{env}]")
    backfill.add_argument(
        "--engine",
        choices=["prefect", "plain"],
        default=os.environ.get("AGENTKPI_ENGINE", "prefect"),
    )
    backfill.add_argument("--quiet", action="store_true", help="do not print the summary")
    backfill.set_defaults(func=_cmd_run)

    quarantine = commands.add_parser(
        "quarantine", help="what is held in quarantine, by source and rule"
    )
    quarantine.add_argument("--warehouse", help="DuckDB file [AGENTKPI_WAREHOUSE]")
    quarantine.set_defaults(func=_cmd_quarantine)

    summary = commands.add_parser("summary", help="print the summary of the published marts")
    summary.add_argument("--warehouse", help="DuckDB file [AGENTKPI_WAREHOUSE]")
    summary.set_defaults(func=_cmd_summary)

    report = commands.add_parser(
        "report", help="write the summary of a day, week or month (HTML, Markdown, PNG)"
    )
    report.add_argument("--period", choices=["day", "week", "month"], default="day")
    report.add_argument(
        "--date", help="a date in the period, YYYY-MM-DD (default: the latest complete one)"
    )
    report.add_argument("--out", help="reports directory [AGENTKPI_REPORTS_DIR, reports_dir]")
    report.add_argument("--warehouse", help="DuckDB file [AGENTKPI_WAREHOUSE]")
    report.add_argument(
        "--send", action="store_true", help="also send it by e-mail and webhook (AGENTKPI_SMTP_*)"
    )
    report.set_defaults(func=_cmd_report)

    docs = commands.add_parser(
        "docs", help="write docs/marts.md (from the warehouse's comments) and configuration.md"
    )
    docs.add_argument("--warehouse", help="DuckDB file [AGENTKPI_WAREHOUSE]")
    docs.add_argument("--out", default="docs/marts.md")
    docs.set_defaults(func=_cmd_docs)

    export = commands.add_parser("export", help="write every mart as a file (Parquet)")
    export.add_argument("dir", help="directory to write <mart>.parquet into")
    export.add_argument("--format", choices=["parquet"], default="parquet")
    export.add_argument("--warehouse", help="DuckDB file [AGENTKPI_WAREHOUSE]")
    export.set_defaults(func=_cmd_export)

    status = commands.add_parser(
        "status",
        help="last runs, freshness of each source, quarantine; exit 2 when a source is stale",
    )
    status.add_argument("--warehouse", help="DuckDB file [AGENTKPI_WAREHOUSE]")
    status.add_argument("--runs", type=int, default=5, help="how many runs to list")
    status.add_argument(
        "--stale-after-s",
        type=float,
        default=os.environ.get("AGENTKPI_STALE_AFTER_S"),
        help="a source whose newest data is older than this is stale [AGENTKPI_STALE_AFTER_S] "
        "(default per source: 2 h, workflows 6 h, business figures 2 days)",
    )
    status.set_defaults(func=_cmd_status)

    config = commands.add_parser(
        "config", help="every setting, its value and where it came from (docs/configuration.md)"
    )
    config.set_defaults(func=_cmd_config)

    serve = commands.add_parser(
        "serve", help="run every flow on its schedule in this process (Prefect serve)"
    )
    serve.add_argument("--db-url", help="operational database URL [AGENTKPI_DB_URL]")
    serve.add_argument("--logs-dir", help="agent logs directory [AGENTKPI_LOGS_DIR]")
    serve.add_argument("--warehouse", help="DuckDB file BI tools open [AGENTKPI_WAREHOUSE]")
    serve.set_defaults(func=_cmd_serve)

    demo = commands.add_parser("demo", help="write a synthetic agent platform")
    demo.add_argument("--agents", type=int, default=32)
    demo.add_argument("--days", type=int, default=30)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--end", help="first day not generated, YYYY-MM-DD (default: today, UTC)")
    demo.add_argument("--flaw-rate", type=float, default=0.0, help="share of flawed rows")
    demo.add_argument("--out", default=str(DEFAULT_DATA_DIR / "demo"))
    demo.add_argument(
        "--if-missing", action="store_true", help="do nothing when the sources already exist"
    )
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `agentkpi` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.config:
        # So that flows started from here (and their tasks) read the same file.
        os.environ["AGENTKPI_CONFIG"] = args.config
    try:
        return args.func(args)
    except SettingsError as error:
        for problem in str(error).splitlines():
            print(f"agentkpi: {problem}", file=sys.stderr)
        return 2
    except FileNotFoundError as error:  # no warehouse yet: one line, whatever the command
        print(f"agentkpi {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
