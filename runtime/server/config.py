"""`ServerConfig`: the server's limits and batching settings (the `serve` flags)."""

from __future__ import annotations

from dataclasses import dataclass

VERSION = "0.1.0"  # the server's API version, reported by /info


@dataclass
class ServerConfig:
    """Args:
        max_request_bytes: a larger body is refused with 413.
        max_texts_per_request: more texts (inputs, prompts) in one request: 422.
        max_tokens_per_text: a text with more tokens: 422 (None: the model's positions;
            TEI's `truncate: true` truncates to the model's positions instead).
        batch_tokens: token budget of one embedding / classification batch.
        batch_wait_ms: how long a batch waits for more requests once it has one.
        max_queue: texts (or generations) waiting per model; beyond it, 503 + Retry-After.
        generation_workers: generations run at once (each in a worker thread).
    """

    max_request_bytes: int = 1 << 20
    max_texts_per_request: int = 64
    max_tokens_per_text: int | None = None
    batch_tokens: int = 8192
    batch_wait_ms: float = 0.0
    max_queue: int = 256
    generation_workers: int = 2
