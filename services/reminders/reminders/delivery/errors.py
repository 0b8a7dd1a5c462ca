"""The one error every channel raises, so the service layer can log it and decide to retry."""

from __future__ import annotations


class DeliveryError(Exception):
    """A message was not delivered. `retryable` is False when trying again cannot help."""

    def __init__(self, reason: str, *, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
