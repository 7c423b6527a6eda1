"""During an outage a repeated warning goes out once per interval, with the number of repeats it stood for."""

from medgov_shared.messaging.errors import describe_error
from medgov_shared.observability.logging import OutageLog


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict]] = []

    def warning(self, event: str, **fields: object) -> None:
        self.lines.append((event, fields))


def test_repeats_within_interval_are_counted_not_logged() -> None:
    recorder = Recorder()
    outage = OutageLog(recorder, interval_s=30)  # type: ignore[arg-type]

    for second in range(0, 61):  # one failure a second for a minute
        outage.warning("batch rolled back", now=float(second), partition=second % 6)

    assert recorder.lines == [
        ("batch rolled back", {"partition": 0}),
        ("batch rolled back", {"partition": 0, "repeats_suppressed": 29}),
        ("batch rolled back", {"partition": 0, "repeats_suppressed": 29}),
    ]


def test_kinds_are_throttled_apart() -> None:
    recorder = Recorder()
    outage = OutageLog(recorder, interval_s=30)  # type: ignore[arg-type]

    outage.warning("job could not reach the database", kind="job:overdue", now=0.0, job="overdue")
    outage.warning("job could not reach the database", kind="job:due", now=1.0, job="due")
    outage.warning("job could not reach the database", kind="job:overdue", now=2.0, job="overdue")

    assert [fields["job"] for _, fields in recorder.lines] == ["overdue", "due"]


def test_error_without_message_is_named() -> None:
    assert describe_error(TimeoutError()) == "TimeoutError (no message)"
    assert describe_error(OSError("connection refused")) == "OSError: connection refused"


def test_aiokafka_repeats_dropped_once_per_interval() -> None:
    from logging import LogRecord

    from medgov_shared.observability.logging import RepeatFilter

    repeat_filter = RepeatFilter("aiokafka", interval_s=10)

    def record(name: str, second: float) -> LogRecord:
        item = LogRecord(name, 40, __file__, 1, "Unable connect to node with id %s: %s", (1, "refused"), None)
        item.created = second
        return item

    # 100 failures a second for 25 s, as a client reconnecting without pause logs them.
    passed = [item for item in (record("aiokafka.conn", step / 100) for step in range(2500)) if repeat_filter.filter(item)]
    ours = record("medgov.consumer", 0.5)

    assert [round(item.created) for item in passed] == [0, 10, 20]
    assert passed[0].getMessage() == "Unable connect to node with id 1: refused"
    assert passed[1].getMessage() == "Unable connect to node with id 1: refused (999 repeats since the last one logged)"
    assert repeat_filter.filter(ours) is True
