"""The IMAP source's fetch one batch ahead (pipeline/sources._FetchAhead), as pure logic: a
fetch function stands in for the server (tests/e2e/test_imap_poll.py runs it on Dovecot)."""
import threading
import time

import pytest

from pipeline import sources
from pipeline.sources import _FetchAhead


class Fetcher:
    """Gives each batch back as its messages, counting what it was asked for."""

    def __init__(self, fail_at: int | None = None):
        self.fetched: list[list[int]] = []
        self.fail_at = fail_at
        self.changed = threading.Condition()

    def __call__(self, batch):
        if self.fail_at is not None and batch[0] == self.fail_at:
            raise OSError("connection reset by peer")
        with self.changed:
            self.fetched.append(batch)
            self.changed.notify_all()
        return [f"message {uid}" for uid in batch]

    def wait_for(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.fetched) >= count, timeout=5)


BATCHES = [[1, 2], [3, 4], [5, 6], [7]]


def test_every_message_comes_once_in_order():
    assert list(_FetchAhead(Fetcher(), BATCHES, size=len)) == [f"message {uid}" for uid in range(1, 8)]


def test_it_fetches_the_next_batch_only_while_one_is_worked_on():
    fetcher = Fetcher()
    messages = iter(_FetchAhead(fetcher, BATCHES, size=len))
    fetcher.wait_for(1)
    time.sleep(0.2)
    assert fetcher.fetched == [[1, 2]]   # nothing taken yet: one batch waits, no more
    assert next(messages) == "message 1"
    fetcher.wait_for(2)
    time.sleep(0.2)
    assert fetcher.fetched == [[1, 2], [3, 4]]   # two in memory: the one in hand and the next
    assert [next(messages) for _ in range(3)] == ["message 2", "message 3", "message 4"]
    fetcher.wait_for(3)
    assert fetcher.fetched[-1] == [5, 6]


def test_after_a_batch_too_large_to_hold_twice_the_next_waits_until_it_is_worked_through(monkeypatch):
    monkeypatch.setattr(sources, "AHEAD_BYTES", len("message 1") * 2 - 1)   # one batch of two is too large
    fetcher = Fetcher()
    messages = iter(_FetchAhead(fetcher, BATCHES, size=len))
    assert [next(messages) for _ in range(2)] == ["message 1", "message 2"]
    time.sleep(0.2)
    assert fetcher.fetched == [[1, 2]]   # none fetched ahead while the large batch is in hand
    assert next(messages) == "message 3"
    assert fetcher.fetched == [[1, 2], [3, 4]]


def test_a_failed_fetch_is_raised_after_the_messages_before_it():
    taken = []
    with pytest.raises(OSError, match="reset"):
        for message in _FetchAhead(Fetcher(fail_at=5), BATCHES, size=len):
            taken.append(message)
    assert taken == [f"message {uid}" for uid in range(1, 5)]


def test_closing_it_frees_the_connection_and_ends_the_messages():
    fetcher = Fetcher()
    ahead = _FetchAhead(fetcher, BATCHES, size=len)
    messages = iter(ahead)
    assert next(messages) == "message 1"
    fetcher.wait_for(2)
    started = time.monotonic()
    ahead.close()   # the thread was waiting for its turn: it stops at once
    assert time.monotonic() - started < 1
    assert not ahead._thread.is_alive()
    assert fetcher.fetched == [[1, 2], [3, 4]]   # nothing fetched after close
    # The batch in hand is given whole; the one fetched ahead stays new for the next pass.
    assert list(messages) == ["message 2"]
