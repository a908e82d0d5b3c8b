"""Progress bars for long operations: tqdm's notebook-aware bar (a widget in Jupyter, text
in a terminal), or nothing at all when not asked for."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

__all__ = ["progress_bar"]


class _Silent:
    def update(self, n: int = 1) -> None:
        pass


@contextmanager
def progress_bar(total: int, unit: str, enabled: bool = True) -> Iterator[Any]:
    if not enabled:
        yield _Silent()
        return
    from tqdm.auto import tqdm
    bar = tqdm(total=total, unit=unit, leave=True)
    try:
        yield bar
    finally:
        bar.close()
