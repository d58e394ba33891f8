"""Rich progress bars shared by the CLI commands."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)


@contextlib.contextmanager
def bar(description: str, total: int | None = None) -> Iterator:
    """A progress bar; yields ``update(done, total=None, **fields)``."""
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
        console=console, transient=False,
    ) as progress:
        task = progress.add_task(description, total=total, info="")

        def update(done: int, total: int | None = None, info: str = "") -> None:
            progress.update(task, completed=done, total=total if total is not None else progress.tasks[0].total,
                            info=info)

        yield update
