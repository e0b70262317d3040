"""Signals as exceptions while an export runs, so that its staging folder is removed and
the command ends with one line (SIGINT, SIGTERM, SIGHUP; kill -9 is handled by the next
run, see model_defs/staged_folder.py)."""

from __future__ import annotations

import contextlib
import signal
import threading

CAUGHT = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """A signal asked the export to stop. A BaseException, like KeyboardInterrupt, so that
    no `except Exception` on the way swallows it."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name

    @property
    def exit_code(self):
        return 128 + self.signum  # the shell's convention for a death by signal


@contextlib.contextmanager
def signals_interrupt():
    """Within the block, SIGINT, SIGTERM and SIGHUP raise `Interrupted`.

    The handler's exception surfaces in whatever code the signal lands in, and C code may
    swallow it and raise its own error instead (numpy turns an exception from an object's
    `__len__` into "int() argument must be ... not 'TensorShape'"). So any exception that
    leaves the block after a signal is re-raised as `Interrupted`, the error chained. A
    handler exception Python discards whole (raised inside a `__del__`: "Exception
    ignored") stops nothing: the export then runs to its end and is published complete."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers (main() called from a server)
        return

    received = []

    def handler(signum, frame):
        received.append(signum)
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in CAUGHT}
    try:
        yield
    except Interrupted:
        raise
    except BaseException as e:
        if received:
            raise Interrupted(received[0]) from e
        raise
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
