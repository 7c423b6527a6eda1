"""SQL of the consent service on an asyncpg connection, one module per concern."""
