"""Aggregation service: compliance, reporting rates, indicators, case statistics, exports (SPEC §8)."""
