"""Run settings: one typed object, each value from a command-line flag, else an environment
variable, else the TOML configuration file, else its default (SETTINGS lists them all;
docs/configuration.md is generated from it).

The file is `--config PATH`, else `AGENTKPI_CONFIG`, else `agentkpi.toml` in the working
directory when there is one. Secrets (the SMTP password) are read from the environment only
and never appear in what `agentkpi config` prints.

`Settings.resolve` refuses wrong values (a number that is not one, warning thresholds looser
than critical ones) with one line per problem; `Settings.check_sources` refuses sources that
cannot be read (a malformed or unreachable database URL, a missing logs directory) before any
work starts.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from transforms.marts import KpiParams

DEFAULT_DATA_DIR = Path("data")
CONFIG_FILE = "agentkpi.toml"


def default_db_url(data_dir: Path = DEFAULT_DATA_DIR) -> str:
    """The demo's operational database under `data/`, as an absolute sqlite URL."""
    return "sqlite:///" + str((data_dir / "demo" / "agents.db").resolve())


@dataclass(frozen=True)
class Setting:
    """One setting: its name (`section.key` in the TOML file), type, default and meaning."""

    name: str
    kind: type
    default: Any
    doc: str

    @property
    def env(self) -> str:
        return "AGENTKPI_" + self.name.split(".")[-1].upper()

    @property
    def section(self) -> str:
        return self.name.split(".")[0]

    @property
    def key(self) -> str:
        return self.name.split(".")[-1]


_K = KpiParams()
SETTINGS = [
    Setting("sources.db_url", str, None, "operational database URL (`sqlite:////abs/path.db`); "
            "default: the demo's, `data/demo/agents.db`"),
    Setting("sources.logs_dir", Path, DEFAULT_DATA_DIR / "demo" / "logs", "agent logs directory"),
    Setting("warehouse.warehouse", Path, DEFAULT_DATA_DIR / "warehouse.duckdb",
            "the DuckDB file BI tools open (the state file lives beside it)"),
    Setting("warehouse.reports_dir", Path, DEFAULT_DATA_DIR / "reports",
            "where summaries are written"),
    Setting("run.extract_retries", int, 3, "retries of each extract stage"),
    Setting("run.retry_delay_s", float, 2.0, "first retry delay; each next one is 4 times longer"),
    Setting("run.lookback_s", float, 3600.0, "changed workflows and messages are read again back "
            "to this long before the latest updated_at seen, for clocks that disagree; ids that "
            "a later id skipped are looked for this long, for rows that commit late"),
    Setting("kpi.heartbeat_interval_s", float, _K.heartbeat_interval_s,
            "the time a heartbeat covers, for uptime"),
    Setting("kpi.success_green", float, _K.success_green, "success rate at or above: green"),
    Setting("kpi.success_red", float, _K.success_red, "success rate below: red (critical alert)"),
    Setting("kpi.response_green_s", float, _K.response_green_s,
            "response time below: green (seconds)"),
    Setting("kpi.response_red_s", float, _K.response_red_s,
            "response time above: red (critical alert; seconds)"),
    Setting("kpi.default_revenue_target_usd", float, _K.default_revenue_target_usd,
            "annual revenue target where business_targets has none"),
    Setting("kpi.default_lead_pipeline_target_usd", float, _K.default_lead_pipeline_target_usd,
            "annual lead pipeline target where business_targets has none"),
    Setting("kpi.healthy_heartbeat_age_s", float, _K.healthy_heartbeat_age_s,
            "an agent is healthy when its last heartbeat is younger than this"),
    Setting("schedules.pipeline_cron", str, "5 * * * *", "when the pipeline runs (UTC cron)"),
    Setting("schedules.daily_report_cron", str, "0 6 * * *", "when the daily summary goes out"),
    Setting("schedules.weekly_report_cron", str, "0 6 * * 1", "when the weekly summary goes out"),
    Setting("schedules.monthly_report_cron", str, "0 6 1 * *",
            "when the monthly summary goes out"),
    Setting("delivery.smtp_host", str, None, "SMTP server for summaries and alerts; none: no "
            "e-mail (the password: `AGENTKPI_SMTP_PASSWORD`, environment only)"),
    Setting("delivery.smtp_port", int, 587, "SMTP port"),
    Setting("delivery.smtp_starttls", bool, True, "upgrade the SMTP connection with STARTTLS"),
    Setting("delivery.smtp_ca_file", str, None,
            "CA certificates to trust instead of the system's (a private CA)"),
    Setting("delivery.smtp_user", str, None, "SMTP login; none: no login"),
    Setting("delivery.mail_from", str, "agentkpi@localhost", "sender of the e-mails"),
    Setting("delivery.mail_to", str, None, "recipients, comma-separated"),
    Setting("delivery.reports_url", str, None,
            "where the reports directory is served, for links (else file paths); the webhook "
            "URL holds a token: `AGENTKPI_WEBHOOK_URL`, environment only"),
    Setting("delivery.delivery_retries", int, 3, "retries of a failed delivery, per channel"),
    Setting("delivery.delivery_retry_delay_s", float, 2.0,
            "first delivery retry delay; each next one is 4 times longer"),
]  # fmt: skip


class SettingsError(ValueError):
    """Settings that cannot work; the message has one line per problem."""


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know."""

    db_url: str
    logs_dir: Path
    warehouse: Path
    kpi: KpiParams = field(default_factory=KpiParams)
    extract_retries: int = 3
    retry_delay_s: float = 2.0
    lookback_s: float = 3600.0
    reports_dir: Path = DEFAULT_DATA_DIR / "reports"
    schedules: Mapping[str, str] = field(default_factory=dict)
    delivery: Mapping[str, Any] = field(default_factory=dict)  # flows.deliver.Channels
    # Where each setting's value came from: flag, environment, file or default.
    origins: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def resolve(
        cls,
        db_url: str | None = None,
        logs_dir: str | Path | None = None,
        warehouse: str | Path | None = None,
        kpi: KpiParams | None = None,
        *,
        config: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        flags: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Flags (the arguments, and `flags` by setting name) first, then the environment,
        then the TOML file, then the defaults."""
        env = os.environ if env is None else env
        given = {"sources.db_url": db_url, "sources.logs_dir": logs_dir,
                 "warehouse.warehouse": warehouse, **(flags or {})}  # fmt: skip
        file_values = _read_config(config, env)
        values: dict[str, Any] = {}
        origins: dict[str, str] = {}
        problems: list[str] = []
        for setting in SETTINGS:
            raw, origin = given.get(setting.name), "flag"
            if raw is None and env.get(setting.env) not in (None, ""):
                raw, origin = env[setting.env], f"environment {setting.env}"
            if raw is None and setting.key in file_values.get(setting.section, {}):
                raw, origin = file_values[setting.section][setting.key], "file"
            if raw is None:
                raw, origin = setting.default, "default"
            try:
                values[setting.name] = None if raw is None else _typed(setting, raw)
            except ValueError:
                problems.append(f"{setting.name} ({origin}): {raw!r} is not {_a(setting.kind)}")
                continue
            origins[setting.name] = origin
        known = {s.name for s in SETTINGS}
        for section, keys in file_values.items():
            if not isinstance(keys, dict):
                problems.append(f"configuration file: {section} is not a [section]")
                continue
            problems += [
                f"configuration file: unknown setting [{section}] {key}"
                for key in keys
                if f"{section}.{key}" not in known
            ]
        if not problems:
            problems += _contradictions(values)
        if problems:
            raise SettingsError("\n".join(problems))
        params = kpi or KpiParams(**{s.key: values[s.name] for s in SETTINGS if s.section == "kpi"})
        return cls(
            db_url=values["sources.db_url"] or default_db_url(),
            logs_dir=values["sources.logs_dir"],
            # A symlink is followed: the new file replaces the one it points to, not the link.
            warehouse=Path(os.path.realpath(values["warehouse.warehouse"])),
            kpi=params,
            extract_retries=values["run.extract_retries"],
            retry_delay_s=values["run.retry_delay_s"],
            lookback_s=values["run.lookback_s"],
            reports_dir=values["warehouse.reports_dir"],
            schedules={s.key: values[s.name] for s in SETTINGS if s.section == "schedules"},
            delivery={s.key: values[s.name] for s in SETTINGS if s.section == "delivery"},
            origins=origins,
        )

    def check_sources(self) -> None:
        """Refuse, one line per problem, sources a run could not read."""
        problems = []
        url = urlparse(self.db_url)
        if url.scheme not in ("sqlite", "postgresql", "postgres"):
            problems.append(
                f"db_url {redact_url(self.db_url)!r}: not a sqlite:/// or postgresql:// URL"
            )
        elif url.scheme == "sqlite":
            path = Path(self.db_url.removeprefix("sqlite:///"))
            if not path.is_file():
                problems.append(f"db_url: no database file at {path}")
        if not self.logs_dir.is_dir():
            problems.append(f"logs_dir: no directory at {self.logs_dir}")
        if problems:
            raise SettingsError("\n".join(problems))

    def described(self) -> list[tuple[str, str, str]]:
        """(setting, value, origin) for every setting, as `agentkpi config` shows them."""
        values = {
            "sources.db_url": redact_url(self.db_url),
            "sources.logs_dir": self.logs_dir,
            "warehouse.warehouse": self.warehouse,
            "warehouse.reports_dir": self.reports_dir,
            "run.extract_retries": self.extract_retries,
            "run.retry_delay_s": self.retry_delay_s,
            "run.lookback_s": self.lookback_s,
            **{f"kpi.{k}": v for k, v in vars(self.kpi).items()},
            **{f"schedules.{k}": v for k, v in self.schedules.items()},
            **{f"delivery.{k}": v for k, v in self.delivery.items()},
        }
        return [(s.name, str(values.get(s.name)), self.origins.get(s.name, "default"))
                for s in SETTINGS]  # fmt: skip


def redact_url(url: str) -> str:
    """A database URL without its password, for anything printed or recorded."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)
    return parsed._replace(netloc=netloc).geturl()


def _read_config(config: str | Path | None, env: Mapping[str, str]) -> dict[str, Any]:
    path = config or env.get("AGENTKPI_CONFIG")
    if path is None:
        if not Path(CONFIG_FILE).is_file():
            return {}
        path = CONFIG_FILE
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"configuration file {path}: not found") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"configuration file {path}: {error}") from None


def _typed(setting: Setting, raw: Any) -> Any:
    if setting.kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(raw)
        return text in ("true", "1", "yes")
    if setting.kind is Path:
        return Path(raw)
    if setting.kind is int:
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError(raw)
        return int(raw)
    if setting.kind is float:
        if isinstance(raw, bool):
            raise ValueError(raw)
        value = float(raw)
        if value != value:  # NaN
            raise ValueError(raw)
        return value
    if not isinstance(raw, str):
        raise ValueError(raw)
    return raw


def _a(kind: type) -> str:
    names = {
        int: "a whole number",
        float: "a number",
        Path: "a path",
        str: "text",
        bool: "true/false",
    }
    return names[kind]


def _contradictions(values: Mapping[str, Any]) -> list[str]:
    problems = []
    green, red = values["kpi.success_green"], values["kpi.success_red"]
    if not 0 <= red <= green <= 1:
        problems.append(
            f"kpi.success_red {red} and kpi.success_green {green}: need 0 <= red <= green <= 1 "
            "(the warning range may not be looser than the critical one)"
        )
    fast, slow = values["kpi.response_green_s"], values["kpi.response_red_s"]
    if not 0 <= fast <= slow:
        problems.append(
            f"kpi.response_green_s {fast} and kpi.response_red_s {slow}: need 0 <= green <= red"
        )
    for name in ("kpi.heartbeat_interval_s", "kpi.healthy_heartbeat_age_s"):
        if values[name] <= 0:
            problems.append(f"{name} {values[name]}: must be above 0")
    for name in ("run.extract_retries", "run.retry_delay_s", "run.lookback_s"):
        if values[name] < 0:
            problems.append(f"{name} {values[name]}: may not be negative")
    return problems


def configuration_markdown() -> str:
    """docs/configuration.md: every setting with its environment variable and default."""
    lines = [
        "# Configuration",
        "",
        "Generated from `flows/settings.py` (`SETTINGS`) by `agentkpi docs`; a test fails when it",
        "is out of date.",
        "Each setting comes from its command-line flag where there is one, else its",
        "environment variable, else the TOML file (`--config PATH`, `AGENTKPI_CONFIG`, or",
        "`agentkpi.toml` in the working directory), else its default. `agentkpi config`",
        "shows every value and where it came from. Delivery channels and their secrets are",
        'environment variables (README, "Delivery and alerts").',
        "",
        "| setting (TOML `[section] key`) | environment | default | meaning |",
        "|---|---|---|---|",
    ]
    for s in SETTINGS:
        default = "" if s.default is None else f"`{s.default}`"
        lines.append(f"| `[{s.section}] {s.key}` | `{s.env}` | {default} | {s.doc} |")
    lines += ["", "Example `agentkpi.toml`:", "", "```toml"]
    for section in dict.fromkeys(s.section for s in SETTINGS):
        lines.append(f"[{section}]")
        for s in SETTINGS:
            if s.section == section and s.default is not None:
                value = s.default
                if isinstance(value, bool):
                    text = "true" if value else "false"
                else:
                    text = f'"{value}"' if isinstance(value, str | Path) else repr(value)
                lines.append(f"{s.key} = {text}")
        lines.append("")
    lines[-1] = "```"
    return "\n".join(lines) + "\n"
