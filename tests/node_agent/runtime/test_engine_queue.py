"""Engine queueing: bounded queue, deadlines, cancellation, unload and close with requests in flight.

The worker calls a request's ``cancelled`` callback when it dequeues it and before every denoising
step, so a callback that blocks on an Event (:class:`Gate`) holds the worker at a known point:
no sleeps, no timing guesses.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from node_agent.runtime.engine import (
    Cancelled,
    DeadlineExceeded,
    Engine,
    GenerateParams,
    ModelLoadError,
    ModelNotLoaded,
    QueueFull,
)
from node_agent.runtime.repository import ModelRepository

TIMEOUT_S = 10.0
PARAMS = GenerateParams(labels=(1,), steps=5, seed=0, guidance=2.0, scheduler="ddim")


class Gate:
    """A ``cancelled`` callback that blocks on call number ``block_at`` until released."""

    def __init__(self, block_at: int = 1, cancel_at: int | None = None):
        self.block_at, self.cancel_at = block_at, cancel_at
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> bool:
        self.calls += 1
        if self.calls == self.block_at:
            self.entered.set()
            assert self.release.wait(TIMEOUT_S)
        return self.cancel_at is not None and self.calls >= self.cancel_at

    def hold(self) -> None:
        assert self.entered.wait(TIMEOUT_S), "the worker never reached the gate"


def wait_until(deadline_monotonic_s: float) -> None:
    """Block until the monotonic clock passes a deadline (the thing under test, not a guess)."""
    pause = threading.Event()
    while time.monotonic() <= deadline_monotonic_s:
        pause.wait(0.005)


@pytest.fixture
def engine(tmp_path, write_model):
    write_model(tmp_path, "m")
    eng = Engine(ModelRepository(tmp_path), intra_op_threads=1, queue_capacity=2)
    eng.load("m")
    yield eng
    eng.close()


def test_queue_full_is_immediate(engine):
    gate = Gate()
    running = engine.submit("m", PARAMS, cancelled=gate)
    gate.hold()  # the worker is busy with `running`; the queue is empty
    queued = [engine.submit("m", PARAMS), engine.submit("m", PARAMS)]
    assert engine.loaded()["m"].queue_depth == 2 and engine.queue_depth() == 2
    started_s = time.monotonic()
    with pytest.raises(QueueFull, match="queue full"):
        engine.submit("m", PARAMS)
    assert time.monotonic() - started_s < 0.5  # refused, not blocked
    gate.release.set()
    for future in [running, *queued]:
        assert future.result(TIMEOUT_S).images.shape == (1, 1, 8, 8)
    assert queued[0].result().queue_time_s > 0


def test_deadline_passed_while_queued_fails_without_computing(engine):
    gate = Gate()
    blocker = engine.submit("m", PARAMS, cancelled=gate)
    gate.hold()
    late_gate = Gate(block_at=0)
    deadline_s = time.monotonic() + 0.05
    late = engine.submit("m", PARAMS, deadline_monotonic_s=deadline_s, cancelled=late_gate)
    wait_until(deadline_s)
    gate.release.set()
    with pytest.raises(DeadlineExceeded, match="while queued"):
        late.result(TIMEOUT_S)
    assert late_gate.calls == 0  # never started
    blocker.result(TIMEOUT_S)


def test_deadline_already_passed_at_submit(engine):
    future = engine.submit("m", PARAMS, deadline_monotonic_s=time.monotonic() - 1.0)
    with pytest.raises(DeadlineExceeded, match="before the request was queued"):
        future.result(TIMEOUT_S)
    assert engine.queue_depth("m") == 0


def test_deadline_between_steps(engine):
    deadline_s = time.monotonic() + 0.5

    class PassDeadlineDuringStep2(Gate):
        def __call__(self) -> bool:
            self.calls += 1
            if self.calls == 3:  # before step 2: let the deadline pass, then let step 2 run
                wait_until(deadline_s)
            return False

    probe = PassDeadlineDuringStep2()
    future = engine.submit("m", dataclasses.replace(PARAMS, steps=50), deadline_monotonic_s=deadline_s, cancelled=probe)
    with pytest.raises(DeadlineExceeded, match="while computing"):
        future.result(TIMEOUT_S)
    assert probe.calls == 3  # dequeue check + before steps 1 and 2; stopped before step 3
    assert engine.submit("m", PARAMS).result(TIMEOUT_S).steps == 5  # the worker keeps serving


def test_cancellation_between_steps(engine):
    probe = Gate(block_at=0, cancel_at=4)
    future = engine.submit("m", dataclasses.replace(PARAMS, steps=50), cancelled=probe)
    with pytest.raises(Cancelled, match="cancelled by the client"):
        future.result(TIMEOUT_S)
    assert probe.calls == 4
    assert engine.loaded()["m"].requests_failed == 1
    assert engine.submit("m", PARAMS).result(TIMEOUT_S).steps == 5


def test_future_cancel_while_queued(engine):
    gate = Gate()
    blocker = engine.submit("m", PARAMS, cancelled=gate)
    gate.hold()
    queued = engine.submit("m", PARAMS)
    assert queued.cancel()
    gate.release.set()
    blocker.result(TIMEOUT_S)
    assert queued.cancelled()
    assert engine.submit("m", PARAMS).result(TIMEOUT_S).steps == 5


def test_unload_fails_queued_and_lets_the_running_one_finish(engine):
    gate = Gate()
    running = engine.submit("m", PARAMS, cancelled=gate)
    gate.hold()
    queued = [engine.submit("m", PARAMS), engine.submit("m", PARAMS)]
    unloader = threading.Thread(target=engine.unload, args=("m",))
    unloader.start()
    for future in queued:
        with pytest.raises(ModelNotLoaded, match="unloaded while queued"):
            future.result(TIMEOUT_S)
    with pytest.raises(ModelNotLoaded):
        engine.submit("m", PARAMS)
    assert unloader.is_alive()  # waiting for the running request
    gate.release.set()
    assert running.result(TIMEOUT_S).steps == 5
    unloader.join(TIMEOUT_S)
    assert not unloader.is_alive() and engine.loaded() == {}


def test_unload_can_cancel_the_running_one(engine):
    gate = Gate()
    running = engine.submit("m", PARAMS, cancelled=gate)
    gate.hold()
    unloader = threading.Thread(target=engine.unload, args=("m",), kwargs={"cancel_running": True})
    unloader.start()
    while unloader.is_alive() and engine.loaded():
        threading.Event().wait(0.001)
    gate.release.set()
    with pytest.raises(ModelNotLoaded, match="unloaded while running"):
        running.result(TIMEOUT_S)
    unloader.join(TIMEOUT_S)
    assert not unloader.is_alive()


def test_close_fails_everything_and_refuses_loads(engine):
    gate = Gate()
    running = engine.submit("m", PARAMS, cancelled=gate)
    gate.hold()
    queued = engine.submit("m", PARAMS)
    closer = threading.Thread(target=engine.close)
    closer.start()
    with pytest.raises(ModelNotLoaded, match="engine closed"):
        queued.result(TIMEOUT_S)
    gate.release.set()
    with pytest.raises(ModelNotLoaded, match="unloaded while running"):
        running.result(TIMEOUT_S)
    closer.join(TIMEOUT_S)
    engine.close()  # idempotent
    with pytest.raises(ModelLoadError, match="closed"):
        engine.load("m")
