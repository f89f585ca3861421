"""A run killed with SIGKILL at any point: readers keep the previous marts, the next run
completes and equals an uninterrupted one.

The run happens in a real child process. The child wraps one pipeline function so that it
prints a marker and waits when reached; the test kills it there with SIGKILL (kill -9). The
points: during the database extract (after a committed batch of tasks), during the log extract
(inside a batch's transaction), during the marts, and during publication (the new file
written, not yet renamed into place).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flows.pipeline import run_pipeline
from tests.conftest import RUN_STARTED_AT, settings_for
from tests.support.compare import assert_frames_match, published_marts
from tests.support.replay import Replay
from warehouse.catalog import MART_KEYS

# The child: run the pipeline with `target` (module:attribute) wrapped to stop there.
CHILD = textwrap.dedent(
    """
    import importlib, sys, time
    from datetime import datetime
    from flows.pipeline import run_pipeline
    from tests.conftest import settings_for
    from pathlib import Path
    platform, warehouse, target, started = sys.argv[1:5]
    module_name, _, attribute = target.rpartition(":")
    owner_name, _, attr = attribute.rpartition(".")
    module = importlib.import_module(module_name)
    owner = getattr(module, owner_name) if owner_name else module
    real = getattr(owner, attr)

    def stop_here(*args, **kwargs):
        result = real(*args, **kwargs)
        print("REACHED", flush=True)
        time.sleep(600)
        return result

    setattr(owner, attr, stop_here)
    run_pipeline(settings_for(Path(platform), Path(warehouse)),
                 run_started_at=datetime.fromisoformat(started))
    """
)

KILL_POINTS = {
    "extract_database": "warehouse.store:StateStore.move_watermark",
    "extract_logs": "warehouse.store:StateStore.add_log_files",
    "build_marts": "transforms.marts:period_marts",
    "write_marts": "warehouse.publish:update_marts",
    "publish": "warehouse.publish:_fsync",
}


@pytest.fixture(scope="module")
def two_batches(flawed_platform: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A platform whose first batch is loaded and published (the baseline), its second batch
    delivered; and the marts of one uninterrupted run over both."""
    root = tmp_path_factory.mktemp("crash")
    replay = Replay(flawed_platform, root / "platform", 2)
    replay.deliver(0)
    baseline = settings_for(root / "platform", root / "baseline" / "warehouse.duckdb")
    run_pipeline(baseline, run_started_at=RUN_STARTED_AT)
    replay.deliver(1)
    uninterrupted = settings_for(root / "platform", root / "uninterrupted" / "warehouse.duckdb")
    for name in ("warehouse.duckdb", "warehouse.state.duckdb"):
        uninterrupted.warehouse.parent.mkdir(exist_ok=True)
        shutil.copyfile(baseline.warehouse.parent / name, uninterrupted.warehouse.parent / name)
    run_pipeline(uninterrupted, run_started_at=RUN_STARTED_AT)
    return root, baseline, published_marts(uninterrupted.warehouse)


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_run_killed_at_any_point_leaves_the_old_marts_and_the_next_run_completes(
    two_batches, point: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    root, baseline, expected = two_batches
    warehouse = tmp_path / "warehouse.duckdb"
    for name in ("warehouse.duckdb", "warehouse.state.duckdb"):
        shutil.copyfile(baseline.warehouse.parent / name, tmp_path / name)
    before = published_marts(warehouse)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            str(root / "platform"),
            str(warehouse),
            KILL_POINTS[point],
            RUN_STARTED_AT.isoformat(),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path.cwd())},
    )
    try:
        assert child.stdout.readline().strip() == "REACHED", f"never reached {point}"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL

    # A reader sees the previous complete marts, from a file it can open.
    assert not Path(str(warehouse) + ".wal").exists()
    after_kill = published_marts(warehouse)
    for name in MART_KEYS:
        assert after_kill[name].equals(before[name]), name

    # The next run completes, and its marts equal those of an uninterrupted run.
    result = run_pipeline(settings_for(root / "platform", warehouse), run_started_at=RUN_STARTED_AT)
    assert result.status == "succeeded"
    final = published_marts(warehouse)
    for name, keys in MART_KEYS.items():
        assert_frames_match(final[name], expected[name], keys)
    assert not list(tmp_path.glob(".warehouse.duckdb.*.tmp*"))
