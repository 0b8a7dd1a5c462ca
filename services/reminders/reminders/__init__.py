"""Reminders service: obligations, reminders, escalation, e-mail and webhook delivery (SPEC §7)."""
