"""The grants domain: fund split, double-entry ledger, subsidies, tool grants and milestones.

Nothing here imports a database, a broker or a web framework. The modules take
event payloads and plain values, and return postings and the facts the service
publishes.
"""
