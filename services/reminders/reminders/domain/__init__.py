"""Pure reminder rules (SPEC §7): obligations, the reminder policy, case deadlines. No I/O."""
