"""Messaging runtime: outbox, relay, inbox-guarded consumer and dead letters. No business rules."""
