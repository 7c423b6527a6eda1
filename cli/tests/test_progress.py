"""Step progress without a terminal: plain lines, no escape sequences."""

import io

from rich.console import Console
from rich.progress import Progress

from medgov_cli.demo.progress import PlainProgress, step_progress


def test_pipe_gets_plain_lines():
    output = io.StringIO()
    console = Console(file=output, force_terminal=False)

    progress = step_progress(console)
    with progress:
        task = progress.add_task("데이터셋 등록 / datasets registered", total=3)
        for _ in range(3):
            progress.advance(task)
        open_ended = progress.add_task("revocations", total=None)
        progress.update(open_ended, total=4)
        progress.update(open_ended, completed=4)

    text = output.getvalue()
    assert isinstance(progress, PlainProgress)
    assert "\x1b" not in text
    assert "\r" not in text
    assert "데이터셋 등록 / datasets registered: 3/3\n" in text
    assert "revocations: 4/4\n" in text
    assert text.count("datasets registered: 3/3") == 1


def test_terminal_gets_bars():
    console = Console(file=io.StringIO(), force_terminal=True)

    assert isinstance(step_progress(console), Progress)
