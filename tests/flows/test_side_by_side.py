"""What lets stages run side by side: threads in the caller's context, a connection per
thread to one state database, and log files read ahead by a thread."""

from __future__ import annotations

import contextvars
import gzip
import hashlib
import threading
import time
from pathlib import Path

import polars as pl
import pytest

from flows import extract
from flows.pipeline import side_by_side
from warehouse.store import StateStore

RUN = contextvars.ContextVar("RUN", default="none")


def test_side_by_side_returns_each_result_in_order_and_runs_at_the_same_time() -> None:
    both_started = threading.Barrier(2, timeout=10)

    def first() -> str:
        both_started.wait()  # would time out if the calls ran one after the other
        return "tables"

    def second() -> str:
        both_started.wait()
        return "logs"

    assert side_by_side(first, second) == ["tables", "logs"]


def test_side_by_side_runs_each_call_in_the_callers_context() -> None:
    RUN.set("run-7")
    seen = side_by_side(RUN.get, RUN.get)
    assert seen == ["run-7", "run-7"]


def test_side_by_side_raises_the_first_error_after_every_call_finished() -> None:
    finished: list[str] = []

    def fails() -> None:
        raise ValueError("database away")

    def slow() -> str:
        time.sleep(0.3)
        finished.append("logs")
        return "logs"

    with pytest.raises(ValueError, match="database away"):
        side_by_side(fails, slow)
    assert finished == ["logs"]


def test_sibling_connections_commit_side_by_side_and_roll_back_alone(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.duckdb")
    store.con.execute("CREATE TABLE core.a (x INTEGER)")
    store.con.execute("CREATE TABLE core.b (x INTEGER)")
    inside = threading.Barrier(2, timeout=10)

    def load(table: str, fail: bool) -> None:
        with store.sibling() as own, own.transaction():
            own.append_table("core", table, pl.DataFrame({"x": list(range(1000))}))
            inside.wait()  # both transactions are open at once
            if fail:
                raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        side_by_side(lambda: load("a", False), lambda: load("b", True))
    assert store.scalar("SELECT count(*) FROM core.a") == 1000
    assert store.scalar("SELECT count(*) FROM core.b") == 0
    store.close()


def _write_logs(root: Path, count: int) -> list[extract.LogFile]:
    files = []
    for i in range(count):
        text = "".join(f'{{"n": {i}, "line": {j}}}\n' for j in range(i % 5 + 1)).encode()
        name = f"d/f{i:04d}.jsonl" + (".gz" if i % 3 == 0 else "")
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
        files.append(extract.LogFile(name, path.stat().st_size))
    return files


def test_read_ahead_gives_every_file_in_order_with_its_text_checksum_and_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(extract, "READ_GROUP_FILES", 7)  # several groups, the last one short
    monkeypatch.setattr(extract, "READ_AHEAD_GROUPS", 2)
    files = _write_logs(tmp_path, 40)
    read = list(extract.read_ahead(tmp_path, files))
    assert [f.path for f, *_ in read] == [f.path for f in files]
    for i, (_, data, digest, lines) in enumerate(read):
        expected = "".join(f'{{"n": {i}, "line": {j}}}\n' for j in range(i % 5 + 1)).encode()
        assert data == expected
        assert digest == hashlib.blake2b(expected, digest_size=16).hexdigest()
        assert lines == i % 5 + 1


def test_read_ahead_raises_a_reading_error_at_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(extract, "READ_GROUP_FILES", 4)
    files = _write_logs(tmp_path, 12)
    (tmp_path / files[9].path).write_bytes(b"\x1f\x8b not gzip")  # files[9] ends in .gz
    seen = []
    with pytest.raises((OSError, EOFError)):
        for log_file, *_ in extract.read_ahead(tmp_path, files):
            seen.append(log_file.path)
    assert seen == [f.path for f in files[:8]]  # the groups before the bad file's


def test_read_ahead_stops_its_thread_when_the_reader_stops_early(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(extract, "READ_GROUP_FILES", 2)
    monkeypatch.setattr(extract, "READ_AHEAD_GROUPS", 1)
    files = _write_logs(tmp_path, 30)
    reading = extract.read_ahead(tmp_path, files)
    next(reading)
    assert any(t.name == "log-reader" for t in threading.enumerate())
    reading.close()
    assert not any(t.name == "log-reader" for t in threading.enumerate())


def _open_descriptors() -> set[str]:
    import os

    return set(os.listdir("/proc/self/fd"))


def test_prefetched_files_come_in_order_and_an_unopenable_one_fails_at_its_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(extract, "PREFETCH_FILES", 4)
    files = _write_logs(tmp_path, 10)
    (tmp_path / files[6].path).unlink()  # opened 4 files ahead, but raised only at its turn
    before = _open_descriptors()
    seen = []
    with pytest.raises(FileNotFoundError):
        for log_file, _ in extract._prefetched_contents(tmp_path, files):
            seen.append(log_file.path)
    assert seen == [f.path for f in files[:6]]
    assert _open_descriptors() == before  # the files opened ahead are closed


def test_prefetch_asks_the_kernel_ahead_and_closes_what_an_early_stop_leaves_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.setattr(extract, "PREFETCH_FILES", 3)
    advised: list[int] = []
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, *_: advised.append(fd), raising=False)
    files = _write_logs(tmp_path, 8)
    before = _open_descriptors()
    reading = extract._prefetched_contents(tmp_path, files)
    first, content = next(reading)
    assert first == files[0] and content == (tmp_path / files[0].path).read_bytes()
    assert len(advised) == 4  # the first file's turn opened the fourth
    assert len(_open_descriptors() - before) == 3
    reading.close()
    assert _open_descriptors() == before


def test_a_file_longer_than_listed_is_read_whole(tmp_path: Path) -> None:
    files = _write_logs(tmp_path, 2)
    path = tmp_path / files[1].path
    path.write_bytes(b'{"n": 1}\n' * 200_000)  # 1.8 MB: more than one read of 1 MB
    ((_, first), (_, second)) = extract._prefetched_contents(tmp_path, files)
    assert first == (tmp_path / files[0].path).read_bytes()
    assert second == path.read_bytes()
