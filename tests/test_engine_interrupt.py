"""engine/interrupt.py: a stop signal waits for the critical section."""
import os
import signal
import time

import pytest

from paddle_fcn.engine.interrupt import TrainingInterrupted, critical, stop_on_signals


@pytest.fixture
def default_sigint():
    """Ctrl-C as an interactive Python process has it. A shell without job control starts a
    background command (``cmd &``, e.g. a CI run under nohup) with SIGINT ignored, and Python
    keeps that; the test needs the usual ``KeyboardInterrupt`` handler to check its return."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_stop_signal_waits_for_the_critical_section_and_a_second_one_changes_nothing(
        default_sigint):
    done = []
    with stop_on_signals():
        with pytest.raises(TrainingInterrupted) as stop:
            with critical():
                os.kill(os.getpid(), signal.SIGTERM)
                os.kill(os.getpid(), signal.SIGINT)  # the same request: still SIGTERM's
                done.append("file written")
        assert done == ["file written"] and stop.value.signum == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGINT)  # during the clean-up after the stop: ignored
        done.append("cleaned up")
    assert done == ["file written", "cleaned up"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
