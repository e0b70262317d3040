"""A signal during an export ends it as `Interrupted`, even when the code the signal lands
in swallows the handler's exception and raises its own error (CI saw numpy do this)."""

import signal

import numpy as np
import pytest

from exporter.interrupts import Interrupted, signals_interrupt


class SignalledShape:
    """A shape whose `__len__` receives SIGTERM: the handler raises inside numpy's sequence
    check, which replaces the exception with a TypeError."""

    def __len__(self):
        signal.raise_signal(signal.SIGTERM)
        return 2

    def __getitem__(self, i):
        return 3


def test_numpy_swallows_the_signal_exception_so_the_test_means_something():
    with pytest.raises(TypeError), signals_interrupt_raw():
        np.prod(SignalledShape(), dtype=np.int64)


def test_a_swallowed_signal_still_ends_the_block_as_interrupted():
    with pytest.raises(Interrupted) as info, signals_interrupt():
        np.prod(SignalledShape(), dtype=np.int64)
    assert info.value.signum == signal.SIGTERM
    assert isinstance(info.value.__cause__, TypeError)


def test_an_error_without_a_signal_passes_through():
    with pytest.raises(ValueError), signals_interrupt():
        raise ValueError("not a signal")


def test_the_previous_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with signals_interrupt():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


class signals_interrupt_raw:
    """A handler that raises, without the block's conversion: what numpy does with it."""

    def __enter__(self):
        def handler(signum, frame):
            raise Interrupted(signum)
        self.previous = signal.signal(signal.SIGTERM, handler)

    def __exit__(self, *exc):
        signal.signal(signal.SIGTERM, self.previous)
        return False


