"""resources/streams.py: a page stream read ahead by a thread keeps its order, holds at most its
bound of pages, raises the producer's error after the pages before it, and stops the thread
and puts the collection threshold back when the caller stops reading. No vendor, no database:
plain iterators stand for the clients' paging."""

import gc
import threading
import time
from collections.abc import Iterator

import pytest

from resources.errors import SourceError
from resources.streams import PAGE_STREAM_THRESHOLD, read_ahead


def test_given_a_failing_paging_when_read_ahead_then_its_pages_in_order_then_its_own_error():
    def paging() -> Iterator[int]:
        yield from range(5)
        raise SourceError("AmoCRM", "AmoCRM: still failing after 6 attempts (HTTP 503).")

    seen = []
    with pytest.raises(SourceError, match=r"^AmoCRM: still failing after 6 attempts"):
        for page in read_ahead(paging, 2):
            seen.append(page)
    assert seen == [0, 1, 2, 3, 4]


def test_given_a_slow_reader_then_at_most_the_bound_is_fetched_and_closing_stops_the_thread():
    fetched: list[int] = []
    before, threads = gc.get_threshold(), set(threading.enumerate())

    def paging() -> Iterator[int]:
        for page in range(100):
            fetched.append(page)
            yield page

    stream = read_ahead(paging, 3)
    assert next(stream) == 0
    assert gc.get_threshold()[0] == PAGE_STREAM_THRESHOLD
    time.sleep(0.3)  # the thread runs ahead until the queue is full
    # 3 waiting, one in the thread's hand, the one read
    assert len(fetched) == 1 + 3 + 1
    stream.close()
    assert set(threading.enumerate()) <= threads  # the reading thread has ended
    assert len(fetched) == 5
    assert gc.get_threshold() == before
