"""The console the CLI prints tables and messages on."""

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
