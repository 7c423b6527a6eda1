"""Test harness: real Kafka and PostgreSQL for integration tests, plus helpers to run services."""
