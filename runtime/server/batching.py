"""`Batcher`: concurrent embedding / classification requests of one model, run together.

Requests queue up; one worker per model takes the first and adds the next ones while their
tokens fit the budget (waiting up to `batch_wait_ms` for more), runs the batch in a thread
(ONNX Runtime releases the GIL, so the event loop keeps serving) and hands each request its
rows. With no wait (the default), requests that arrive while a batch runs form the next
one, so a lone client pays nothing and a crowd gets batches.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from runtime.server.errors import RequestError

log = logging.getLogger(__name__)


class _Pending:
    __slots__ = ("texts", "tokens", "future")

    def __init__(self, texts, tokens, future):
        self.texts, self.tokens, self.future = texts, tokens, future


class Batcher:
    """Args:
        name: the model's name (for metrics and messages).
        run: texts -> one result row per text (called in a worker thread).
        config: the `ServerConfig` (batch_tokens, batch_wait_ms, max_queue).
        metrics: the server's `Metrics`.
        executor: where batches run.
    """

    def __init__(self, name, run, config, metrics, executor):
        self.name, self.run, self.config = name, run, config
        self.metrics, self.executor = metrics, executor
        self.pending = deque()
        self.waiting = 0  # texts queued, not yet in a running batch
        self._wakeup = None
        self._worker = None
        metrics.queue_depth[name] = lambda: self.waiting

    async def submit(self, texts, tokens):
        """The result rows of `texts`, whose token counts are `tokens`, once batched."""
        if self.waiting + len(texts) > self.config.max_queue:
            raise RequestError(503, f"model {self.name!r} has {self.waiting} texts queued "
                               f"(max_queue {self.config.max_queue}); retry shortly",
                               "max_queue", {"Retry-After": "1"})
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._worker = loop.create_task(self._work())
        item = _Pending(texts, sum(tokens), loop.create_future())
        self.pending.append(item)
        self.waiting += len(texts)
        self._wakeup.set()
        return await item.future

    async def _work(self):
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self.pending:
                batch = await self._take()
                await self._run(batch)

    async def _take(self):
        """The next batch: queued requests in order while their tokens fit the budget."""
        loop = asyncio.get_running_loop()
        batch = [self.pending.popleft()]
        used = batch[0].tokens
        deadline = loop.time() + self.config.batch_wait_ms / 1000
        while True:
            if self.pending:
                if used + self.pending[0].tokens > self.config.batch_tokens:
                    break
                item = self.pending.popleft()
                batch.append(item)
                used += item.tokens
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                break
        self.waiting -= sum(len(item.texts) for item in batch)
        return [item for item in batch if not item.future.done()]  # drop cancelled ones

    async def _run(self, batch):
        if not batch:
            return
        texts = [t for item in batch for t in item.texts]
        self.metrics.observe_batch(self.name, len(texts))
        try:
            rows = await self._call(texts)
        except Exception as e:  # noqa: BLE001 - handed to the request's handler
            if len(batch) == 1:
                _settle(batch[0], error=e)
                return
            for item in batch:  # one bad request must not fail the others: run each alone
                try:
                    _settle(item, rows=await self._call(item.texts))
                except Exception as e:  # noqa: BLE001
                    _settle(item, error=e)
            return
        start = 0
        for item in batch:
            _settle(item, rows=rows[start:start + len(item.texts)])
            start += len(item.texts)

    async def _call(self, texts):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self.run, texts)


def _settle(item, rows=None, error=None):
    if item.future.done():  # its client went away
        return
    if error is not None:
        item.future.set_exception(error)
    else:
        item.future.set_result(rows)
