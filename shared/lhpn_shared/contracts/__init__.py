"""Versioned event contracts and the data shapes they carry (SPEC §2–§6, §9.1).

This package is the only coupling between services: a consumer reads the same models the
producer wrote. A breaking change is a new version published beside the old one.
"""
