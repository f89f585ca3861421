"""Run settings: where the sources are, where the warehouse goes, and the KPI parameters.

Each setting comes from a command-line flag, else an environment variable, else its default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from transforms.marts import KpiParams

DEFAULT_DATA_DIR = Path("data")


def default_db_url(data_dir: Path = DEFAULT_DATA_DIR) -> str:
    """The demo's operational database under `data/`, as an absolute sqlite URL."""
    return "sqlite:///" + str((data_dir / "demo" / "agents.db").resolve())


@dataclass(frozen=True)
class Settings:
    """Everything a pipeline run needs to know."""

    db_url: str
    logs_dir: Path
    warehouse: Path
    kpi: KpiParams = field(default_factory=KpiParams)
    extract_retries: int = 3
    retry_delay_s: float = 2.0
    # Changed rows (workflows, messages) are read again back to this long before the latest
    # updated_at seen, for clocks that disagree.
    lookback_s: float = 3600.0

    @classmethod
    def resolve(
        cls,
        db_url: str | None = None,
        logs_dir: str | Path | None = None,
        warehouse: str | Path | None = None,
        kpi: KpiParams | None = None,
    ) -> Settings:
        """Flags first, then AGENTKPI_DB_URL / AGENTKPI_LOGS_DIR / AGENTKPI_WAREHOUSE, then the
        demo's defaults under `data/`."""
        return cls(
            db_url=db_url or os.environ.get("AGENTKPI_DB_URL") or default_db_url(),
            logs_dir=Path(
                logs_dir
                or os.environ.get("AGENTKPI_LOGS_DIR")
                or DEFAULT_DATA_DIR / "demo" / "logs"
            ),
            warehouse=Path(
                warehouse
                or os.environ.get("AGENTKPI_WAREHOUSE")
                or DEFAULT_DATA_DIR / "warehouse.duckdb"
            ),
            kpi=kpi or KpiParams(),
            extract_retries=int(os.environ.get("AGENTKPI_EXTRACT_RETRIES", "3")),
            retry_delay_s=float(os.environ.get("AGENTKPI_RETRY_DELAY_S", "2")),
            lookback_s=float(os.environ.get("AGENTKPI_LOOKBACK_S", "3600")),
        )
