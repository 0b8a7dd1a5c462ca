"""The cases domain: pure rules (workflow, deadlines, working days), no I/O, no clock."""
