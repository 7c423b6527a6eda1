"""Logging, metrics and tracing shared by the services."""
