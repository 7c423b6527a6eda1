"""Deletion of outbox rows some days after the broker acknowledged them.

Once acknowledged, an event's lasting record is its Kafka topic (service
topics keep every event), so a sent row is kept only to look into recent
deliveries. Without this job the outbox grows by one row per emitted event
for as long as the service runs. Rows not yet sent and rows the broker
rejected (`failed_at` set) are never deleted here.

The inbox is not pruned: its rows make a replayed or re-sent event a
duplicate, however late it comes.
"""

from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog

from medgov_shared.messaging.context import HandlerContext
from medgov_shared.observability import metrics

log = structlog.get_logger(__name__)

# Rows one run reads at most, from the oldest, so that its scan and
# transaction stay short however large the outbox; the next run continues.
MAX_ROWS_PER_RUN = 50_000

# Only the oldest rows by `position` are read: a filter on `sent_at` over the
# whole table would scan every recent row on each run, because none of them
# qualifies. Rejected rows stay, so NOTE: once more than MAX_ROWS_PER_RUN of
# them lie at the head of the outbox, nothing after them is deleted.
_DELETE_SENT = """
WITH oldest AS (SELECT position, sent_at, failed_at FROM outbox ORDER BY position LIMIT $2)
DELETE FROM outbox WHERE position IN (
    SELECT position FROM oldest WHERE sent_at < now() - $1::interval AND failed_at IS NULL
)
"""


def outbox_pruner(service: str, keep_sent_days: float) -> Callable[[HandlerContext], Awaitable[None]]:
    """Return a periodic job that deletes outbox rows sent more than `keep_sent_days` ago."""
    keep = timedelta(days=keep_sent_days)

    async def prune_sent_outbox_rows(context: HandlerContext) -> None:
        status = await context.connection.execute(_DELETE_SENT, keep, MAX_ROWS_PER_RUN)
        deleted = int(status.rsplit(" ", 1)[-1])
        if deleted:
            metrics.OUTBOX_PRUNED.labels(service).inc(deleted)
            log.info("sent outbox rows deleted", service=service, rows=deleted, keep_sent_days=keep_sent_days)

    return prune_sent_outbox_rows
