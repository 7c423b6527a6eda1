"""The review domain: screening, the SLA clock, boards, purpose matching, the council and the application aggregate.

Nothing here opens a connection or reads the wall clock: every command takes the
current instant, which the service reads from an injectable medgov_shared.clock.Clock.
"""
