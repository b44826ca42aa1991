"""The command queue between `intake` commands and the running worker, on a real store: a
command is done by the worker when one holds the store, here when none does, exactly once
either way, and the caller is never left waiting for a worker that has gone."""
import datetime as dt
import os
import threading

import pytest

from pipeline import commands
from pipeline.commands import Context, Outcome, perform, serve_queue
from pipeline.settings import load_settings
from store.command_queue import CommandQueue
from store.repository import Store, StoreError
from tests.configs import write_config

NOW = dt.datetime(2022, 7, 20, 2, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def settings(tmp_path):
    return load_settings(write_config(tmp_path))


@pytest.fixture
def counted(monkeypatch):
    """A registered command that counts its calls and says which store did it."""
    calls = []

    def count(ctx, label):
        calls.append(label)
        return Outcome(out=[f"counted {label}"])

    monkeypatch.setitem(commands.COMMANDS, "count", count)
    return calls


def in_thread(func):
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", func()))
    thread.start()
    return thread, result


def test_with_no_worker_the_command_is_done_here(settings, counted):
    outcome = perform(settings, "count", {"label": "a"}, lambda: NOW)
    assert (outcome.out, outcome.by_worker, counted) == (["counted a"], None, ["a"])


def test_with_a_worker_holding_the_store_the_worker_does_it(settings, counted):
    worker = Store(settings.store.path, settings.store.files)
    worker.lock(role="run")
    queue = CommandQueue(settings.store.path)
    try:
        thread, result = in_thread(lambda: perform(settings, "count", {"label": "b"}, lambda: NOW))
        served = 0
        while thread.is_alive():
            served += serve_queue(lambda: Context(settings, worker, NOW), queue)
            thread.join(0.05)
    finally:
        worker.close()
    assert served == 1 and counted == ["b"]
    assert result["value"].out == ["counted b"] and result["value"].by_worker == os.getpid()
    assert os.listdir(queue.folder) == [], "request and answer are cleaned away"


def test_a_worker_that_never_takes_it_leaves_nothing_behind(settings, counted):
    worker = Store(settings.store.path, settings.store.files)
    worker.lock(role="run")
    try:
        outcome = perform(settings, "count", {"label": "c"}, lambda: NOW, wait_seconds=0.5)
    finally:
        worker.close()
    assert "did not take the command within 0.5 s" in outcome.error and "nothing was done" in outcome.error
    assert counted == [] and os.listdir(CommandQueue(settings.store.path).folder) == []


def test_when_the_worker_stops_before_taking_it_the_command_is_done_here(settings, counted):
    worker = Store(settings.store.path, settings.store.files)
    worker.lock(role="run")
    queue = CommandQueue(settings.store.path)
    thread, result = in_thread(lambda: perform(settings, "count", {"label": "d"}, lambda: NOW))
    while not queue.waiting():
        thread.join(0.02)
    worker.close()                 # the service stops; its request is still unclaimed
    thread.join(10)
    assert result["value"].out == ["counted d"] and result["value"].by_worker is None
    assert counted == ["d"] and serve_queue(lambda: None, queue) == 0, "done once, not twice"


def test_a_writer_that_is_not_the_worker_is_refused_with_one_line(settings, counted):
    other = Store(settings.store.path, settings.store.files)
    other.lock(role="poll")
    try:
        with pytest.raises(StoreError, match=rf"another intake process \(intake poll, pid {os.getpid()}\)"):
            perform(settings, "count", {"label": "e"}, lambda: NOW)
    finally:
        other.close()
    assert counted == []


def test_a_bad_request_or_a_failing_command_is_answered_and_the_worker_goes_on(settings, monkeypatch):
    def broken(ctx):
        raise KeyError("a bug")

    monkeypatch.setitem(commands.COMMANDS, "broken", broken)
    queue = CommandQueue(settings.store.path)
    unknown, failing = queue.submit("no-such-command", {}), queue.submit("broken", {})
    store = Store(settings.store.path, settings.store.files)
    try:
        assert serve_queue(lambda: Context(settings, store, NOW), queue) == 2
    finally:
        store.close()
    assert queue.result(unknown) == {"exit": 1, "out": [],
                                     "err": ["the worker does not know the command 'no-such-command'"]}
    assert queue.result(failing)["err"] == ["the worker failed on broken: KeyError: 'a bug'"]


def test_a_command_the_previous_worker_took_and_never_answered_is_reported(settings):
    queue = CommandQueue(settings.store.path)
    queue.submit("mark", {"name": "张三"})
    assert queue.claim_next() is not None          # then the worker was killed
    assert queue.interrupted() == [{"command": "mark", "args": {"name": "张三"}}]
    assert queue.claim_next() is None and queue.interrupted() == []
