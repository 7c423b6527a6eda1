"""Progress of the scenario's steps: rich bars in a terminal, plain lines in a pipe or a log file.

Rich redraws its bars with cursor movements, which a log file or CI output
keeps as escape sequences and repeated fragments. Without a terminal, each
change prints one line such as "datasets registered: 3/7", at most once per
`interval_s` per step, and always when a step completes.
"""

import time
from types import TracebackType
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


class StepProgress(Protocol):
    """The part of rich's Progress API the scenario uses."""

    def __enter__(self) -> "StepProgress": ...

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None: ...

    def add_task(self, description: str, total: float | None = ...) -> TaskID: ...

    def advance(self, task_id: TaskID, advance: float = ...) -> None: ...

    def update(self, task_id: TaskID, *, total: float | None = ..., completed: float | None = ...) -> None: ...


class _PlainStep:
    def __init__(self, description: str, total: float | None) -> None:
        self.description = description
        self.total = total
        self.completed = 0.0
        self.printed_at = float("-inf")
        self.printed_line = ""


class PlainProgress:
    """Step progress as plain text lines, for output that is not a terminal."""

    def __init__(self, console: Console, *, interval_s: float = 5.0) -> None:
        self.console = console
        self.interval_s = interval_s
        self._steps: list[_PlainStep] = []

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for step in self._steps:
            self._print(step, force=True)

    def add_task(self, description: str, total: float | None = None) -> TaskID:
        self._steps.append(_PlainStep(description, total))
        return TaskID(len(self._steps) - 1)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        step = self._steps[task_id]
        step.completed += advance
        self._print(step)

    def update(self, task_id: TaskID, *, total: float | None = None, completed: float | None = None) -> None:
        step = self._steps[task_id]
        if total is not None:
            step.total = total
        if completed is not None:
            step.completed = completed
        self._print(step)

    def _print(self, step: _PlainStep, *, force: bool = False) -> None:
        total = "?" if step.total is None else f"{step.total:g}"
        line = f"{step.description}: {step.completed:g}/{total}"
        if line == step.printed_line:
            return
        done = step.total is not None and step.completed >= step.total
        now = time.monotonic()
        if not (force or done or now - step.printed_at >= self.interval_s):
            return
        step.printed_at = now
        step.printed_line = line
        # highlight=False and markup=False: the line goes out exactly as built, without styling codes.
        self.console.print(line, highlight=False, markup=False, soft_wrap=True)


def step_progress(console: Console) -> StepProgress:
    """Return rich progress bars when `console` writes to a terminal, else plain progress lines."""
    if console.is_terminal:
        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console)
    return PlainProgress(console)
