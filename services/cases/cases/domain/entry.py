"""Cases entered after the fact (a paper letter received last month, SPEC §6, §9.2 `at`)."""

from __future__ import annotations

from datetime import date, datetime

from lhpn_shared.clock import LOCAL_TZ
from lhpn_shared.periods import day_start


def opening_instant(received_on: date, now: datetime) -> datetime:
    """When the case's timeline begins: now for a case received today, else the start of the
    day it was received, so that what happened since (accepted, in progress…) can be entered
    with its real instants, in order, between receipt and now — and deadlines count from them."""
    if received_on >= now.astimezone(LOCAL_TZ).date():
        return now
    return day_start(received_on)
