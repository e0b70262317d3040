"""`threaded(iterator)`: an iterator run in a background thread, so the consumer's work
(printing, sending) overlaps the next decoding step."""

from __future__ import annotations

import queue
import threading


def threaded(iterator, depth=8):
    """Run `iterator` in a thread, handing its items (and its return value, as the
    returned generator's own) through a bounded queue; closing the returned generator
    stops the worker."""
    items = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def work():
        try:
            while not stop.is_set():
                try:
                    item = next(iterator)
                except StopIteration as e:
                    items.put((done, e.value))
                    return
                items.put((None, item))
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
            items.put((e, None))
        finally:
            iterator.close()

    def consume():
        # The worker starts on the first next(): an iterator dropped unused holds nothing.
        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        try:
            while True:
                kind, value = items.get()
                if kind is done:
                    return value
                if kind is not None:
                    raise kind
                yield value
        finally:
            stop.set()
            while thread.is_alive():  # unblock a worker waiting on a full queue
                try:
                    items.get_nowait()
                except queue.Empty:
                    thread.join(0.01)

    return consume()
