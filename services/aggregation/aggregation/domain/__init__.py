"""Pure aggregation rules: facts kept per entity and per unit, and the answers built on them.

No I/O here. The read model stores the shapes of `facts` and hands them to the query functions
in `compliance`, `rates`, `indicators` and `case_stats`.
"""
