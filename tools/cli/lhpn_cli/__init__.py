"""The operator command `lhpn` (issue 14 starts here with `lhpn units`)."""
