"""Replay a generated platform as it would have been seen hour after hour, in batches.

`Replay(source, target, batches)` makes an empty copy of the source platform at `target`;
`deliver(k)` brings the copy to its state after batch k of `batches`:

- the registry and the targets are there from the first batch;
- `agent_performance` and `business_metrics` rows arrive in id order, a share per batch (the
  generator's late rows and restatements arrive with their ids, as they would);
- `workflow_executions` and `agent_communications` rows appear when they start and are then
  updated in place: until the batch's clock passes their `updated_at` they are in their
  provisional form (running / pending, no completion, no receipt, no response, `updated_at`
  at their start); the last batch leaves every row exactly as in the source;
- log files arrive with the batch of their hour, some of them one or two batches late, and
  the last batch delivers a few files a second time under another path.

After the last batch the copy holds the source's data (plus the files delivered twice), so an
incremental run after every batch must end with the marts of one full run.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
from datetime import datetime
from pathlib import Path

from flows.extract import SOURCE_TABLES

# Times in the source are ISO text in mixed shapes; these are enough to place a row in time.
_SHAPES = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")


def _moment(text: object) -> datetime | None:
    """A source timestamp's UTC-ish moment (offsets ignored: a batch boundary is coarse), or
    None where it does not parse (such a row is delivered whole with the first batch)."""
    if not isinstance(text, str) or len(text) < 19:
        return None
    for shape in _SHAPES:
        try:
            return datetime.strptime(text[:19], shape)
        except ValueError:
            continue
    return None


class Replay:
    """A platform delivered in batches (see the module's docstring)."""

    def __init__(self, source: Path, target: Path, batches: int, seed: int = 5) -> None:
        self.source, self.target, self.batches = source, target, batches
        self.random = random.Random(seed)
        target.mkdir(parents=True, exist_ok=True)
        (target / "logs").mkdir(exist_ok=True)
        src = sqlite3.connect(source / "agents.db")
        self.rows = {
            table: src.execute(
                f"SELECT {', '.join(columns)} FROM {table} ORDER BY rowid"
            ).fetchall()
            for table, columns in SOURCE_TABLES.items()
        }
        ddl = [sql for (sql,) in src.execute("SELECT sql FROM sqlite_master WHERE type='table'")]
        src.close()
        db = sqlite3.connect(target / "agents.db")
        for statement in ddl:
            db.execute(statement)
        db.commit()
        db.close()
        moments = [
            m
            for table, column in [
                ("workflow_executions", "started_at"),
                ("agent_communications", "sent_at"),
            ]
            for row in self.rows[table]
            if (m := _moment(row[SOURCE_TABLES[table].index(column)])) is not None
        ]
        first, last = min(moments), max(moments)
        # The clock at the end of each batch but the last (which is "everything").
        self.clocks = [first + (last - first) * (k + 1) / batches for k in range(batches - 1)]
        self.files = self._plan_files()

    def _plan_files(self) -> list[list[Path]]:
        plan: list[list[Path]] = [[] for _ in range(self.batches)]
        files = sorted(p for p in (self.source / "logs").rglob("*") if p.is_file())
        for path in files:
            day = path.parent.name
            hour = path.name.split(".")[0].rsplit("-", 1)[-1]
            moment = _moment(f"{day} {hour}:00:00") or datetime.min
            batch = next((k for k, c in enumerate(self.clocks) if moment < c), self.batches - 1)
            if self.random.random() < 0.2:  # late delivery
                batch = min(batch + self.random.choice([1, 2]), self.batches - 1)
            plan[batch].append(path)
        return plan

    def deliver(self, k: int) -> None:
        """Bring the copy to its state after batch `k` (0-based, in order)."""
        final = k == self.batches - 1
        clock = None if final else self.clocks[k]
        db = sqlite3.connect(self.target / "agents.db")
        if k == 0:
            for table in ("agents", "business_targets"):
                self._insert(db, table, self.rows[table])
        for table in ("agent_performance", "business_metrics"):
            rows = self.rows[table]
            share = len(rows) * (k + 1) // self.batches
            done = len(rows) * k // self.batches
            self._insert(db, table, rows[done:share])
        self._update(db, "workflow_executions", clock, "started_at", running)
        self._update(db, "agent_communications", clock, "sent_at", pending)
        db.commit()
        db.close()
        for path in self.files[k]:
            relative = path.relative_to(self.source / "logs")
            (self.target / "logs" / relative.parent).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, self.target / "logs" / relative)
        if final:
            delivered = sorted(p for p in (self.target / "logs").rglob("*") if p.is_file())
            for path in self.random.sample(delivered, min(3, len(delivered))):
                copy = self.target / "logs" / "redelivered" / path.relative_to(self.target / "logs")
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, copy)

    def _insert(self, db: sqlite3.Connection, table: str, rows: list[tuple]) -> None:
        columns = SOURCE_TABLES[table]
        marks = ", ".join("?" for _ in columns)
        db.executemany(
            f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
        )

    def _update(self, db, table, clock, start, provisional) -> None:  # type: ignore[no-untyped-def]
        """Write each row in its state at `clock` (None: its final state): absent before it
        starts, provisional until its last change (`updated_at`, as the contract defines
        it), final after."""
        columns = SOURCE_TABLES[table]
        rows = []
        for row in self.rows[table]:
            started = _moment(row[columns.index(start)])
            changed = _moment(row[columns.index("updated_at")])
            if clock is None or started is None:
                rows.append(row)
            elif started > clock:
                continue
            elif changed is not None and changed > clock:
                rows.append(provisional(dict(zip(columns, row, strict=True)), columns))
            else:
                rows.append(row)
        self._insert(db, table, rows)


def running(row: dict, columns: list[str]) -> tuple:
    """A workflow run as it looked while running."""
    row.update(
        completed_at=None,
        status="running",
        errors=0,
        errors_recovered=0,
        updated_at=row["started_at"],
    )
    return tuple(row[c] for c in columns)


def pending(row: dict, columns: list[str]) -> tuple:
    """A message as it looked before delivery."""
    row.update(received_at=None, responded_at=None, status="pending", updated_at=row["sent_at"])
    return tuple(row[c] for c in columns)
