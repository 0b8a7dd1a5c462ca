"""Aggregation settings: the shared base plus the port and the batching of the event consumer."""

from __future__ import annotations

from pydantic import Field

from lhpn_shared.settings import ServiceSettings


class AggregationSettings(ServiceSettings):
    service_name: str = "aggregation"
    aggregation_port: int = 8004
    batch_size: int = Field(
        default=2000,
        ge=1,
        le=5000,
        description="events applied to the read models in one batch of bulk writes (under a "
        "backlog; a batch waits at most flush_interval_seconds for more)",
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

    @property
    def events_prefetch(self) -> int:
        """Two batches in flight: the next one fills while the current one is written."""
        return 2 * self.batch_size
