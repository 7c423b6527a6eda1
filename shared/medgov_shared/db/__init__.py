"""PostgreSQL access: connection pools, migrations and the messaging tables."""
