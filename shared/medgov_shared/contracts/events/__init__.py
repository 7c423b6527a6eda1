"""Event payload models, one module per producing service plus the hospitals' inbound commands."""
