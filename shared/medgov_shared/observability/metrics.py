"""Prometheus metrics of the messaging runtime and the domains.

Defined once per process; the `service` label keeps services apart when tests
run several of them in one interpreter.
"""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter(
    "medgov_events_consumed",
    "Events taken from Kafka, by outcome (applied, duplicate, skipped_unknown, dead_lettered).",
    ["service", "topic", "event_type", "outcome"],
)
DEAD_LETTERS = Counter(
    "medgov_dead_letters",
    "Messages sent to a dead-letter topic, by reason.",
    ["service", "topic", "reason"],
)
HANDLER_SECONDS = Histogram(
    "medgov_handler_seconds",
    "Time to apply one event inside its database transaction.",
    ["service", "event_type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
CONSUMER_LAG = Gauge(
    "medgov_consumer_lag",
    "Messages between the committed offset and the end of the partition.",
    ["service", "topic", "partition"],
)
OUTBOX_BACKLOG = Gauge("medgov_outbox_backlog", "Outbox rows not yet published.", ["service"])
OUTBOX_RELAY_ERRORS = Counter(
    "medgov_outbox_relay_errors", "Relay passes that failed with an unexpected error and were retried.", ["service"]
)
OUTBOX_PUBLISHED = Counter("medgov_outbox_published", "Outbox rows published to Kafka.", ["service", "topic"])
OUTBOX_PRUNED = Counter(
    "medgov_outbox_pruned", "Sent outbox rows deleted after outbox_keep_sent_days.", ["service"]
)
OUTBOX_FAILED = Counter(
    "medgov_outbox_failed", "Outbox rows that can never be published (e.g. too large).", ["service", "reason"]
)
HTTP_REJECTED = Counter(
    "medgov_http_rejected", "HTTP requests rejected with a 4xx status.", ["service", "route", "status"]
)
SLA_WARNINGS = Counter("medgov_review_sla_warnings", "ReviewSlaWarning events emitted.", ["threshold"])
SLA_BREACHES = Counter("medgov_review_sla_breaches", "ReviewSlaBreached events emitted.")
EXCLUSIONS_OVERDUE = Counter(
    "medgov_exclusions_overdue", "ExclusionOverdue events emitted: a party did not acknowledge an exclusion in time."
)
REVOCATION_FANOUT_SECONDS = Histogram(
    "medgov_revocation_fanout_seconds",
    "Time from ConsentRevoked effect to the last ExclusionRequested written for it.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
