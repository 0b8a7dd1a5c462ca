"""Exports of the aggregation answers: .xlsx tables and the .docx thematic report (SPEC §8)."""
