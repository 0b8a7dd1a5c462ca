"""The run command starts aggregation's partitions: one process per partition by default, each
told which partition it writes; more replicas are standbys of the partitions in turn."""

from __future__ import annotations

from pathlib import Path

import pytest

from lhpn_cli.supervisor import RunSettings


def programs(env: dict[str, str]) -> list[tuple[str, str | None]]:
    settings = RunSettings(Path("."), Path("/nonexistent"), ["aggregation"], env)
    return [(p.name, p.env.get("AGGREGATION_PARTITION")) for p in settings.programs("aggregation")]


def test_with_three_partitions_the_run_command_starts_one_writer_per_partition():
    assert programs({"AGGREGATION_PARTITIONS": "3"}) == [
        ("aggregation", "0"),
        ("aggregation-2", "1"),
        ("aggregation-3", "2"),
    ]


def test_twice_as_many_replicas_as_partitions_give_each_partition_a_standby():
    assert programs({"AGGREGATION_PARTITIONS": "2", "REPLICAS_AGGREGATION": "4"}) == [
        ("aggregation", "0"),
        ("aggregation-2", "1"),
        ("aggregation-3", "0"),
        ("aggregation-4", "1"),
    ]


def test_without_partitions_aggregation_runs_as_before():
    assert programs({}) == [("aggregation", None)]


def test_a_partition_count_that_is_not_a_whole_number_stops_the_run_command():
    with pytest.raises(SystemExit, match="AGGREGATION_PARTITIONS"):
        programs({"AGGREGATION_PARTITIONS": "two"})
