"""The text summary printed after a run."""

from __future__ import annotations

import pytest

from flows.summary import apart_from, format_summary
from warehouse.read import summary


@pytest.mark.parametrize(
    ("value", "threshold", "shown"),
    [
        (0.5, 0.8, "0.50"),
        (0.9496, 0.95, "0.9496"),  # breaks 0.95: not shown as 0.95
        (0.94999, 0.95, "0.94999"),
        (5.0004, 5.0, "5.0004"),
        (5.0000001, 5.0, "5.000000"),  # six decimals at most
        (1234.5, 5.0, "1,234.50"),
    ],
)
def test_an_alert_value_shows_as_many_decimals_as_set_it_apart(
    value: float, threshold: float, shown: str
) -> None:
    assert apart_from(value, threshold) == shown


def test_the_summary_shows_no_alert_value_as_its_threshold(flawed_run) -> None:  # type: ignore[no-untyped-def]
    settings, _ = flawed_run
    figures = summary(settings.warehouse)
    assert figures.alerts.height > 0
    text = format_summary(figures).splitlines()
    start = next(n for n, line in enumerate(text) if line.startswith("Alerts on"))
    shown = min(10, figures.alerts.height)  # under "Alerts on ..." and the header
    rows = [line.split() for line in text[start + 2 : start + 2 + shown]]
    assert len(rows) == shown
    for level, _agent, _metric, value, threshold in rows:
        assert level in ("warning", "critical") and value != threshold
