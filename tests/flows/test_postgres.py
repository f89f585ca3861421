"""PostgreSQL as the source: a real server on loopback (Debian's package; .ci/run installs it
where missing), loaded with the flawed generated platform, read through its URL by the same
extract; the marts equal those read from SQLite."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from flows.extract import SOURCE_TABLES, _id_ranges, extension_path, indexed_by, open_source
from flows.pipeline import PipelineError, run_pipeline
from flows.settings import Settings
from tests.conftest import RUN_STARTED_AT
from tests.support.compare import assert_frames_match, published_marts
from warehouse.catalog import MART_KEYS


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else None


def _as_postgres_user(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def postgres(free_tcp_port_factory) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A PostgreSQL server of its own on 127.0.0.1; yields the URL of an empty database."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is missing: .ci/run installs Debian's postgresql package")
        pytest.skip("Debian's postgresql package is not installed here (.ci/run installs it)")
    root = Path(tempfile.mkdtemp(prefix="agentkpi-pg-"))
    root.chmod(0o755)
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_tcp_port_factory()
    initialise = [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
    subprocess.run(_as_postgres_user(initialise), check=True, capture_output=True)
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root}"
    subprocess.run(
        _as_postgres_user([pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"),
                           "-w", "start"]),
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c",
             "CREATE DATABASE agentkpi"],
            check=True, capture_output=True,
        )  # fmt: skip
        yield f"postgresql://postgres@127.0.0.1:{port}/agentkpi"
    finally:
        subprocess.run(
            _as_postgres_user([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def _load(platform: Path, url: str) -> None:
    """The platform's six tables into PostgreSQL as they were written (text, flaws and all;
    ids as integers), through DuckDB."""
    con = duckdb.connect()
    try:
        con.execute(f"LOAD '{extension_path('sqlite_scanner')}'")
        con.execute(f"LOAD '{extension_path('postgres')}'")
        con.execute("SET sqlite_all_varchar = true")
        con.execute(f"ATTACH '{platform / 'agents.db'}' AS lite (TYPE sqlite, READ_ONLY)")
        con.execute(f"ATTACH '{url}' AS pg (TYPE postgres)")
        for table, columns in SOURCE_TABLES.items():
            typed = ", ".join(
                f'CAST("{c}" AS BIGINT) AS "{c}"' if c == "id" else f'"{c}"' for c in columns
            )
            con.execute(f'CREATE TABLE pg.public."{table}" AS SELECT {typed} FROM lite."{table}"')
    finally:
        con.close()


def test_the_marts_from_postgresql_equal_those_from_sqlite(
    postgres: str, flawed_platform: Path, flawed_run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _load(flawed_platform, postgres)
    settings = Settings.resolve(
        db_url=postgres, logs_dir=flawed_platform / "logs", warehouse=tmp_path / "w.duckdb"
    )
    result = run_pipeline(settings, run_started_at=RUN_STARTED_AT)
    from_sqlite, sqlite_result = flawed_run
    for source, count in sqlite_result.counts.items():
        assert vars(result.counts[source]) == vars(count), source
    ours, theirs = published_marts(settings.warehouse), published_marts(from_sqlite.warehouse)
    for mart in MART_KEYS:
        assert theirs[mart].height > 0
        assert_frames_match(ours[mart], theirs[mart], MART_KEYS[mart])
    # And incrementally: a second run reads nothing new from PostgreSQL.
    again = run_pipeline(settings, run_started_at=RUN_STARTED_AT)
    assert again.counts["agent_performance"].read == 0
    # With an index on updated_at, the search for changed messages is one query it serves
    # (as in SQLite); it finds what it found by scanning.
    subprocess.run(
        ["psql", postgres, "-c",
         "CREATE INDEX by_update ON agent_communications (updated_at)"],
        check=True, capture_output=True,
    )  # fmt: skip
    con = open_source(postgres)
    try:
        assert indexed_by(con, "agent_communications", "updated_at")
        assert not indexed_by(con, "agent_communications", "status")
        assert _id_ranges(con, "agent_communications") == [(None, None)]
    finally:
        con.close()
    indexed = run_pipeline(settings, run_started_at=RUN_STARTED_AT)
    searched = ("agent_communications", "workflow_executions")
    assert {s: vars(indexed.counts[s]) for s in searched} == {
        s: vars(again.counts[s]) for s in searched
    }


def test_an_unreachable_postgresql_fails_with_one_line_and_no_password(
    tmp_path: Path, free_tcp_port: int
) -> None:
    settings = Settings.resolve(
        db_url=f"postgresql://postgres:hunter2@127.0.0.1:{free_tcp_port}/none",
        logs_dir=tmp_path,
        warehouse=tmp_path / "w.duckdb",
    )
    settings = Settings(**{**vars(settings), "extract_retries": 0})
    with pytest.raises(PipelineError, match="operational database unreachable") as raised:
        run_pipeline(settings)
    assert "\n" not in str(raised.value)
    assert "hunter2" not in str(raised.value)
    assert ("sources.db_url", f"postgresql://postgres:***@127.0.0.1:{free_tcp_port}/none") in {
        (name, value) for name, value, _ in settings.described()
    }
