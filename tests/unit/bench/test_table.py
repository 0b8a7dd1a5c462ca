"""bench/run.py's table and JSON, from rows made here (no benchmark runs)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.run import run_all
from bench.table import Row, at_least, below, table, write_json


def test_a_row_s_ratio_is_its_value_over_the_baseline_and_absent_without_one() -> None:
    assert Row("http", 90.0, "events/s", 200.0).ratio == 0.45
    assert Row("rss", 80.0, "MiB").ratio is None
    assert Row("not yet", None, "×", 3.0).ratio is None


def test_targets_are_judged_from_the_values_and_not_judged_without_them() -> None:
    assert at_least(0.40, 90.0, 200.0) is True
    assert at_least(0.40, 70.0, 200.0) is False
    assert at_least(0.40, None, 200.0) is None
    assert below(5, 4.2) is True
    assert below(0.1, 0.05, 0.12) is False  # p95 fine, first request after a restart not
    assert below(1, None) is None


def test_the_json_has_the_seven_fields_of_every_row(tmp_path: Path) -> None:
    rows = [
        Row("intake HTTP", 91.23456, "events/s", 200.0, "≥ 0.40× baseline", True),
        Row("two partitions vs one", None, "×", None, "≥ 1.5× one"),
    ]
    path = tmp_path / "bench.json"
    write_json(rows, path)
    data = json.loads(path.read_text())
    assert data == [
        {
            "name": "intake HTTP",
            "value": 91.2346,
            "unit": "events/s",
            "baseline": 200.0,
            "ratio": 0.456,
            "target": "≥ 0.40× baseline",
            "met": True,
        },
        {
            "name": "two partitions vs one",
            "value": None,
            "unit": "×",
            "baseline": None,
            "ratio": None,
            "target": "≥ 1.5× one",
            "met": None,
        },
    ]


def test_the_table_has_one_line_per_row_and_says_what_is_not_met_or_not_measured() -> None:
    text = table(
        [
            Row("country p95", 140.0, "ms", 700.0, "p95 < 100 ms", False),
            Row("export", 2.5, "s", None, "< 5 s", True),
            Row("two partitions vs one", None, "×"),
        ]
    )
    lines = text.splitlines()
    assert len(lines) == 2 + 3
    assert lines[0].split("|")[1].strip() == "measure"
    assert "140.0 ms" in lines[2] and "0.20×" in lines[2] and "NO" in lines[2]
    assert "yes" in lines[3]
    assert "not measured" in lines[4]
    assert len({len(line) for line in lines}) == 1  # aligned columns


def test_a_benchmark_that_fails_leaves_a_row_saying_so_and_the_others_still_run() -> None:
    def broken(quick: bool) -> list[Row]:
        raise RuntimeError("no broker")

    def fine(quick: bool) -> list[Row]:
        return [Row(f"fine quick={quick}", 1.0, "s")]

    rows = run_all({"broken": broken, "fine": fine}, True, log=lambda _: None)
    names = [r.name for r in rows]
    assert names[0].startswith("broken: FAILED (RuntimeError: no broker)")
    assert names[1] == "fine quick=True"
    assert [r.name for r in rows[2:]] == ["run time: broken benchmark", "run time: fine benchmark"]
