"""The consoles the CLI prints on: results on standard output, messages and reports on standard error."""

import sys

from rich.console import Console


def report_console() -> Console:
    """Return a console on standard error, 160 columns wide when standard error is no terminal.

    Without a terminal rich assumes 80 columns, cuts table cells to "exp…"
    and wraps long reasons, so output written to a file or a pipe gets 160.
    """
    if sys.stderr.isatty():
        return Console(stderr=True)
    return Console(stderr=True, width=160)


def result_console() -> Console:
    """Return a console on standard output for a command's results, 240 columns wide when it is no terminal.

    A table written to a file keeps each row on one line: `dlq show` has five
    columns, and its error column alone can be 120 characters.
    """
    if sys.stdout.isatty():
        return Console()
    return Console(width=240)
