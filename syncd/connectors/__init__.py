"""The vendor clients (one module per vendor) and what each vendor declares about its record
kinds (`*_kinds.py`, gathered in the registry `kinds.py`). Connectors import no rules, daemon
or store code; the declarations and the registry are plain data (no vendor client), read by
the rules language, the daemon and doctor."""
