"""Aggregation settings: the shared base plus the port and the batching of the event consumer."""

from __future__ import annotations

from pydantic import Field, model_validator

from lhpn_shared.settings import ServiceSettings


class AggregationSettings(ServiceSettings):
    service_name: str = "aggregation"
    aggregation_port: int = 8004
    # A batch rewrites each ancestor it touches once: under a national backlog of 30,000
    # events, 4000 ran at 2.47x the one-write-per-event baseline and 2000 at 1.85x, for about
    # 35 MiB more at the peak (README, "Open points")
    batch_size: int = Field(
        default=4000,
        ge=1,
        le=5000,
        description="events applied to the read models in one batch of bulk writes (under a "
        "backlog; a batch waits at most flush_interval_seconds for more; the prefetch is twice "
        "this)",
    )
    flush_interval_seconds: float = Field(
        default=0.2,
        gt=0,
        le=1.0,
        description="longest wait for a batch to fill; keeps answers fresh within 2 s",
    )
    retry_delay_seconds: float = Field(
        default=1.0, gt=0, description="pause before requeueing a batch the database refused"
    )

    aggregation_partitions: int = Field(
        default=1,
        ge=1,
        le=64,
        description="partitions of the event stream (docs/aggregation.md, 'Partitions'): 1, "
        "one queue and one active writer; N > 1, a router places each event by its unit's "
        "province on one of N queues, each written by its own process",
    )
    aggregation_partition: int = Field(
        default=0,
        ge=0,
        description="the partition this process writes (0…AGGREGATION_PARTITIONS−1); every "
        "process stands by as the router and answers from every partition",
    )

    @model_validator(mode="after")
    def _partition_in_range(self) -> AggregationSettings:
        if self.aggregation_partition >= self.aggregation_partitions:
            raise ValueError(
                f"AGGREGATION_PARTITION={self.aggregation_partition} is not one of the "
                f"{self.aggregation_partitions} partitions (0…{self.aggregation_partitions - 1})"
            )
        return self

    @property
    def partitioned(self) -> bool:
        return self.aggregation_partitions > 1

    @property
    def events_prefetch(self) -> int:
        """Two batches in flight: the next one fills while the current one is written."""
        return 2 * self.batch_size
