"""Static data shipped with the cases service."""

from __future__ import annotations

import json
from importlib.resources import files

from cases.domain.holidays import HolidayCalendar

VN_HOLIDAYS_FILE = "vn-holidays.json"


def load_vn_holidays() -> HolidayCalendar:
    """The official days off and make-up working days in `vn-holidays.json` (read each call)."""
    text = files(__package__).joinpath(VN_HOLIDAYS_FILE).read_text(encoding="utf-8")
    return HolidayCalendar.from_mapping(json.loads(text))
