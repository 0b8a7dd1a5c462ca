"""`python -m lhpn_cli` is `lhpn`."""

from .app import main

main()
