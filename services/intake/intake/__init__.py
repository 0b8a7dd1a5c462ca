"""Intake service: units, plans, activities, reports, inbound events (SPEC §2–§5, §9)."""
