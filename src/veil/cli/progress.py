"""Rich progress bars shared by the CLI commands."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)


@contextlib.contextmanager
def bar(description: str, total: int | None = None) -> Iterator:
    """A progress bar; yields ``update(done, total=None, info="")``.

    The bar appears at the first update and vanishes if the block fails, so a bad input
    still ends in exactly one error line.
    """
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console,
    )
    task = progress.add_task(description, total=total, info="", start=False)

    def update(done: int, new_total: int | None = None, info: str = "") -> None:
        if not progress.live.is_started:
            progress.start()
            progress.start_task(task)
        progress.update(task, completed=done, total=new_total if new_total is not None else total, info=info)

    try:
        yield update
    except BaseException:
        progress.remove_task(task)
        raise
    finally:
        if progress.live.is_started:
            progress.stop()


class RichProgress:
    """The demo's Progress (``veil.demo.Progress``) on the CLI's console and bars."""

    def say(self, line: str) -> None:
        console.print(line, highlight=False)

    def bar(self, description: str, total: int | None = None):
        return bar(description, total)
