"""Listing the log files: only directories that changed since the last listing are read."""

from __future__ import annotations

import os
import time
from pathlib import Path

from flows.extract import list_changed_log_files

HOUR_AGO_NS = time.time_ns() - 3600 * 10**9


def _write(path: Path, text: str, mtime_ns: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path.parent, ns=(mtime_ns, mtime_ns))


def _remembered(dirs) -> dict[str, tuple[int, bool]]:  # type: ignore[no-untyped-def]
    return {p: (m, s) for p, m, s in dirs.iter_rows()}


def test_an_unchanged_directory_is_not_listed_again_and_a_changed_one_is(tmp_path: Path) -> None:
    _write(tmp_path / "2026-11-01" / "a-00.jsonl", "{}\n", HOUR_AGO_NS)
    _write(tmp_path / "2026-11-02" / "a-00.jsonl", "{}\n", HOUR_AGO_NS)
    files, dirs = list_changed_log_files(tmp_path, {}, time.time_ns())
    assert [f.path for f in files] == ["2026-11-01/a-00.jsonl", "2026-11-02/a-00.jsonl"]

    again, dirs = list_changed_log_files(tmp_path, _remembered(dirs), time.time_ns())
    assert again == []

    # A new file in one directory changes that directory's mtime: only it is listed.
    _write(tmp_path / "2026-11-02" / "a-01.jsonl.gz", "", HOUR_AGO_NS + 10**9)
    changed, dirs = list_changed_log_files(tmp_path, _remembered(dirs), time.time_ns())
    assert [f.path for f in changed] == ["2026-11-02/a-00.jsonl", "2026-11-02/a-01.jsonl.gz"]


def test_a_directory_changed_just_now_is_listed_again_next_time(tmp_path: Path) -> None:
    # Its mtime may not change again for a file added within the same clock tick.
    _write(tmp_path / "2026-11-02" / "a-00.jsonl", "{}\n", time.time_ns())
    _, dirs = list_changed_log_files(tmp_path, {}, time.time_ns())
    again, _ = list_changed_log_files(tmp_path, _remembered(dirs), time.time_ns())
    assert [f.path for f in again] == ["2026-11-02/a-00.jsonl"]


def test_a_new_subdirectory_anywhere_is_found(tmp_path: Path) -> None:
    _write(tmp_path / "2026-11-01" / "a-00.jsonl", "{}\n", HOUR_AGO_NS)
    _, dirs = list_changed_log_files(tmp_path, {}, time.time_ns())
    _write(tmp_path / "2026-11-01" / "again" / "a-00.jsonl", "{}\n", HOUR_AGO_NS + 10**9)
    os.utime(tmp_path / "2026-11-01", ns=(HOUR_AGO_NS + 2 * 10**9,) * 2)
    found, _ = list_changed_log_files(tmp_path, _remembered(dirs), time.time_ns())
    assert "2026-11-01/again/a-00.jsonl" in [f.path for f in found]
