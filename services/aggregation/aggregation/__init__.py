"""Aggregation service: compliance, reporting rates, indicators, case stats, exports (SPEC §8)."""
