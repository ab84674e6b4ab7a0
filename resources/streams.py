"""Page streams read by threads of their own while the caller loads the pages it already has:
the vendor's answer time overlaps our per-page work (validation, staging), and memory stays
bounded by the pages waiting."""

from __future__ import annotations

import gc
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

# The interpreter's first collection threshold while a page stream is read. A parsed page is
# about 10k containers that live until it is staged: at the default 700 each page set off a
# dozen young collections whose survivors were promoted, so full collections walked the whole
# heap (Dagster's included) every few pages, a third of the loader's CPU. Refcounting frees a
# page either way; a few thousand more allocations between collections only delay cycles.
PAGE_STREAM_THRESHOLD = 25_000


def fan_in(producers: Sequence[Callable[[], Iterator[T]]], waiting: int) -> Iterator[T]:
    """Every producer's items as they come, each producer in a thread of its own, at most
    `waiting` items waiting (memory stays bounded). A producer's error is raised here after the
    items it yielded before it; closing the iterator stops them all at their next item (a
    request in flight is answered first)."""
    items: queue.Queue[tuple[str, Any]] = queue.Queue(waiting)
    stop = threading.Event()

    def offer(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run(produce: Callable[[], Iterator[T]]) -> None:
        try:
            for item in produce():
                if not offer(("item", item)):
                    return
            offer(("done", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            offer(("error", exc))

    with ThreadPoolExecutor(len(producers)) as pool:
        for produce in producers:
            pool.submit(run, produce)
        try:
            finished = 0
            while finished < len(producers):
                kind, value = items.get()
                if kind == "error":
                    raise value
                if kind == "done":
                    finished += 1
                else:
                    yield value
        finally:
            stop.set()


def read_ahead(produce: Callable[[], Iterator[T]], pages: int) -> Iterator[T]:
    """`produce`'s pages, read by a thread of its own up to `pages` ahead of the caller (one
    request in flight besides: a paging that needs the last answer for its next request keeps
    its order), with fewer garbage collections while they stream."""
    with fewer_collections():
        yield from fan_in([produce], pages)


class _Collections:
    """Raises the first collection threshold while any page stream runs, and puts back the one
    found when the last ends (streams may overlap in threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams = 0
        self._before = gc.get_threshold()

    def enter(self) -> None:
        with self._lock:
            if self._streams == 0:
                self._before = gc.get_threshold()
                gc.set_threshold(max(PAGE_STREAM_THRESHOLD, self._before[0]), *self._before[1:])
            self._streams += 1

    def exit(self) -> None:
        with self._lock:
            self._streams -= 1
            if self._streams == 0:
                gc.set_threshold(*self._before)


_COLLECTIONS = _Collections()


@contextmanager
def fewer_collections() -> Iterator[None]:
    _COLLECTIONS.enter()
    try:
        yield
    finally:
        _COLLECTIONS.exit()
