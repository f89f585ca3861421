"""`make bench`: time a full run stage by stage on generated platforms of several sizes.

Each size is generated once under `bench-data/` (kept between benchmark runs; regenerate by
deleting it), then the pipeline runs in a fresh child process so that its peak memory is its
own. The results are written to `docs/benchmarks.md` with the command that produced them.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path

BENCH_END = date(2026, 11, 1)
RUN_STARTED_AT = datetime(2026, 11, 1, 0, 30)
SIZES = [(32, 30), (32, 91), (8, 365), (32, 365)]


def _generate(root: Path, agents: int, days: int, flaw_rate: float) -> tuple[Path, float]:
    out = root / f"a{agents}-d{days}-f{flaw_rate}"
    meta = out / "bench_meta.json"
    if meta.exists():
        return out, json.loads(meta.read_text())["generate_s"]
    from flows.demo import generate_demo

    started = time.perf_counter()
    generate_demo(out, agents=agents, days=days, seed=2026, end=BENCH_END, flaw_rate=flaw_rate)
    seconds = time.perf_counter() - started
    meta.write_text(json.dumps({"generate_s": seconds}))
    return out, seconds


def _run_child(platform_dir: Path) -> dict:
    """Run the pipeline in a child process; it prints its timings as JSON."""
    code = (
        "import json, sys, resource\n"
        "from datetime import datetime\n"
        "from flows.pipeline import run_pipeline\n"
        "from flows.settings import Settings\n"
        "p = sys.argv[1]\n"
        "s = Settings.resolve(db_url='sqlite:///' + p + '/agents.db', logs_dir=p + '/logs',\n"
        "                     warehouse=p + '/warehouse.duckdb')\n"
        f"r = run_pipeline(s, run_started_at=datetime.fromisoformat('{RUN_STARTED_AT}'))\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(json.dumps({'timings': r.timings, 'peak_rss_mb': peak,\n"
        "  'counts': {k: vars(v) for k, v in r.counts.items()}}))\n"
    )
    for stale in platform_dir.glob("warehouse*.duckdb*"):
        stale.unlink()
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code, str(platform_dir.resolve())],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - started
    return result


def _markdown(results: list[dict], command: str) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Produced by `{command}` on {datetime.now().date()} "
        f"({platform.machine()}, {platform.python_version()}, "
        f"{_cores()} cores). Each run is a full refresh in a fresh process, without Prefect "
        "(Prefect's own start-up, about 9 s with a temporary server, comes on top).",
        "",
        "Data: `agentkpi demo` at its default rates (about one task per agent per minute, a "
        "heartbeat every 60 s, a resource sample every 5 minutes), flaw rate as listed.",
        "",
        "| agents | days | flaw rate | generate s | rows read | run s (wall) | peak RSS MB |"
        " rows/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rows = sum(c["read"] for c in r["counts"].values())
        lines.append(
            f"| {r['agents']} | {r['days']} | {r['flaw_rate']} | {r['generate_s']:.1f} | "
            f"{rows:,} | {r['wall_s']:.1f} | {r['peak_rss_mb']:,.0f} | "
            f"{rows / r['wall_s']:,.0f} |"
        )
    for r in results:
        lines += [
            "",
            f"## {r['agents']} agents × {r['days']} days, stage by stage",
            "",
            "| stage | seconds | rows | rows/s | peak RSS MB so far |",
            "|---|---:|---:|---:|---:|",
        ]
        for t in r["timings"]:
            rows = t["rows"] or 0
            rate = f"{rows / t['seconds']:,.0f}" if rows and t["seconds"] else ""
            lines.append(
                f"| {t['stage']} | {t['seconds']:.2f} | {rows:,} | {rate} | "
                f"{t['peak_rss_mb']:,.0f} |"
            )
    return "\n".join(lines) + "\n"


def _cores() -> int:
    import os

    return os.cpu_count() or 0


def main(argv: list[str] | None = None) -> int:
    """Generate the platforms, run and time each, write docs/benchmarks.md."""
    parser = argparse.ArgumentParser(prog="python -m flows.bench")
    parser.add_argument("--root", default="bench-data")
    parser.add_argument("--flaw-rate", type=float, default=0.0)
    parser.add_argument(
        "--sizes", default=",".join(f"{a}x{d}" for a, d in SIZES), help="AGENTSxDAYS,..."
    )
    parser.add_argument("--out", default="docs/benchmarks.md")
    args = parser.parse_args(argv)
    root = Path(args.root)
    results = []
    for size in args.sizes.split(","):
        agents, days = (int(x) for x in size.split("x"))
        platform_dir, generate_s = _generate(root, agents, days, args.flaw_rate)
        result = _run_child(platform_dir)
        result.update(agents=agents, days=days, flaw_rate=args.flaw_rate, generate_s=generate_s)
        results.append(result)
        print(
            f"{agents} agents x {days} days: {result['wall_s']:.1f} s, "
            f"peak {result['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    command = "make bench" if argv is None else "python -m flows.bench " + " ".join(argv)
    Path(args.out).write_text(_markdown(results, command))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
