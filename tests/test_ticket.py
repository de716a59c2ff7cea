"""A waiter's `Ticket` through its public face (issue 19): the generator binds it to a run with `bind(leave)`,
wakes it with `wake()`, and the waiter blocks in `wait(timeout)`; cancel and detach leave the run once."""

from __future__ import annotations

import threading
import time

from linkpix.pipeline.flight import Ticket


def test_a_bound_ticket_leaves_its_run_once_stopping_it_on_cancel_and_not_on_detach():
    left: list[bool] = []
    cancelled, detached = Ticket(), Ticket()
    assert cancelled.bind(left.append) and detached.bind(left.append)
    cancelled.cancel()
    cancelled.cancel()  # a second cancel is a no-op
    detached.detach()
    assert left == [True, False]
    assert cancelled.cancelled and detached.cancelled


def test_a_ticket_cancelled_before_the_run_is_bound_refuses_it_and_never_calls_leave():
    ticket, left = Ticket(), []
    ticket.cancel()
    assert ticket.bind(left.append) is False
    assert left == []


def test_wait_returns_when_woken_from_another_thread_or_after_its_timeout():
    ticket = Ticket()
    assert ticket.bind(lambda abort: None)
    started = time.monotonic()
    assert ticket.wait(0.05) is False
    assert time.monotonic() - started >= 0.04
    threading.Timer(0.05, ticket.wake).start()
    assert ticket.wait(5.0) is True
    again = Ticket()
    again.bind(lambda abort: None)
    threading.Timer(0.05, again.cancel).start()  # leaving wakes the waiter too
    assert again.wait(5.0) is True and again.cancelled
