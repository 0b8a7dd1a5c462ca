"""Cases service: legal-aid cases with deadlines and protected personal data (SPEC §6)."""
