"""Opening the operational database: its DuckDB extension comes from the installed file, and
DuckDB checks that file's signature once per process, again whenever the file changed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from flows import extract
from tests.support.platform_builder import write_database

ROOT = Path(__file__).resolve().parents[2]


def _unsigned_allowed(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(con.execute("SELECT current_setting('allow_unsigned_extensions')").fetchone()[0])  # type: ignore[index]


@pytest.fixture
def own_extension(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the sqlite_scanner file that open_source loads, with nothing verified yet."""
    copy = tmp_path / "ext" / "sqlite_scanner.duckdb_extension"
    copy.parent.mkdir()
    shutil.copyfile(extract.extension_path("sqlite_scanner"), copy)
    monkeypatch.setattr(extract, "extension_path", lambda name: copy)
    monkeypatch.setattr(extract, "_VERIFIED", set())
    return copy


def test_an_extension_is_checked_on_first_load_and_then_trusted_while_unchanged(
    own_extension: Path, tmp_path: Path
) -> None:
    url = write_database(tmp_path / "src.db", {"agents": [{"agent_id": "a1"}]})
    opened = []
    for _ in range(3):
        con = extract.open_source(url)
        opened.append(_unsigned_allowed(con))
        assert con.execute("SELECT agent_id FROM src.agents").fetchall() == [("a1",)]
        con.close()
    assert opened == [False, True, True]


def test_a_changed_extension_file_is_checked_again_and_refused(
    own_extension: Path, tmp_path: Path
) -> None:
    url = write_database(tmp_path / "src.db", {"agents": [{"agent_id": "a1"}]})
    extract.open_source(url).close()
    with own_extension.open("r+b") as file:  # one byte of its code, not the file that was signed
        file.seek(own_extension.stat().st_size // 2)
        byte = file.read(1)
        file.seek(-1, 1)
        file.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(duckdb.Error, match="signature"):
        extract.open_source(url)


def test_the_source_connection_has_no_worker_threads_of_its_own(tmp_path: Path) -> None:
    # Each query on the source is driven by the thread that runs it (a scan in parts has a
    # cursor and a thread per part); idle workers would only take turns with other stages.
    url = write_database(tmp_path / "src.db", {"agents": [{"agent_id": "a1"}]})
    con = extract.open_source(url)
    try:
        assert con.execute("SELECT current_setting('threads')").fetchone() == (1,)
    finally:
        con.close()


_LOAD_POSTGRES = (
    "import duckdb\n"
    "from flows.extract import extension_path\n"
    "link = extension_path('postgres')\n"
    "con = duckdb.connect()\n"
    "con.execute(f\"LOAD '{link}'\")\n"
    'print(con.execute("SELECT loaded FROM duckdb_extensions() '
    "WHERE extension_name = 'postgres_scanner'\").fetchone()[0])\n"
    "print(link)\n"
)


def _load_postgres(cache: Path) -> tuple[str, Path]:
    """In a process of its own with `cache` as XDG_CACHE_HOME: whether the postgres extension
    loaded, and the link it was loaded through."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_POSTGRES], capture_output=True, text=True, check=True,
        cwd=ROOT, env=env,
    )  # fmt: skip
    loaded, link = done.stdout.split()
    return loaded, Path(link)


def test_the_postgres_extension_link_is_made_once_in_the_users_cache(tmp_path: Path) -> None:
    # DuckDB wants the file named after the extension's entry point: a link, which a job run
    # every hour (and sometimes killed) must not leave behind in a new place each time.
    first = _load_postgres(tmp_path / "cache")
    again = _load_postgres(tmp_path / "cache")
    assert first == again
    loaded, link = first
    assert loaded == "True"
    assert link.is_relative_to(tmp_path / "cache" / "agentkpi" / "extensions")
    assert link.name == "postgres_scanner.duckdb_extension"
    assert [p.name for p in link.parent.iterdir()] == [link.name]


def test_without_a_writable_cache_the_link_goes_when_its_process_ends(tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("a file, not a directory")
    loaded, link = _load_postgres(tmp_path / "cache")
    assert loaded == "True"
    assert link.parent.name.startswith("agentkpi-ext-")
    assert not link.parent.exists()
