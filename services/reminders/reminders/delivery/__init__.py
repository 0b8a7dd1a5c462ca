"""Delivery adapters (SPEC §7): render a planned message, send it by e-mail or webhook, retry."""
