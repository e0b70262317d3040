"""`Metrics`: the server's counters and histograms, written in the Prometheus text format
(exposition format 0.0.4) by hand: a few dicts, no client library."""

from __future__ import annotations

import threading
from collections import defaultdict

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class _Histogram:
    def __init__(self, buckets):
        self.buckets = buckets
        self.counts = defaultdict(lambda: [0] * (len(buckets) + 1))  # labels -> per bucket
        self.sums = defaultdict(float)

    def observe(self, labels, value):
        counts = self.counts[labels]
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                counts[i] += 1
                break
        else:
            counts[-1] += 1
        self.sums[labels] += value

    def lines(self, name):
        for labels, counts in sorted(self.counts.items()):
            total = 0
            for bound, count in zip((*self.buckets, "+Inf"), counts):
                total += count
                yield f'{name}_bucket{{{_labels(labels, le=bound)}}} {total}'
            yield f"{name}_sum{{{_labels(labels)}}} {self.sums[labels]:.6f}"
            yield f"{name}_count{{{_labels(labels)}}} {total}"


def _labels(pairs, **extra):
    items = list(pairs) + [(k, v) for k, v in extra.items()]
    return ",".join(f'{k}="{_escape(v)}"' for k, v in items)


def _escape(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Requests (by route and status), errors, request latency, batch sizes and the
    depth of each model's queue."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests = defaultdict(int)  # ((route, status),) -> count
        self.errors = defaultdict(int)
        self.latency = _Histogram(LATENCY_BUCKETS)
        self.batch_size = _Histogram(BATCH_BUCKETS)
        self.queue_depth = {}  # model -> a callable giving the texts waiting now

    def observe_request(self, route, status, seconds):
        labels = (("route", route), ("status", str(status)))
        with self._lock:
            self.requests[labels] += 1
            if status >= 400:
                self.errors[labels] += 1
            self.latency.observe((("route", route),), seconds)

    def observe_batch(self, model, size):
        with self._lock:
            self.batch_size.observe((("model", model),), size)

    def render(self):
        with self._lock:
            out = ["# HELP hubonnx_requests_total HTTP requests answered, by route and status.",
                   "# TYPE hubonnx_requests_total counter"]
            out += [f"hubonnx_requests_total{{{_labels(k)}}} {v}"
                    for k, v in sorted(self.requests.items())]
            out += ["# HELP hubonnx_errors_total Requests answered with a status >= 400.",
                    "# TYPE hubonnx_errors_total counter"]
            out += [f"hubonnx_errors_total{{{_labels(k)}}} {v}"
                    for k, v in sorted(self.errors.items())]
            out += ["# HELP hubonnx_request_duration_seconds Time to answer a request.",
                    "# TYPE hubonnx_request_duration_seconds histogram"]
            out += list(self.latency.lines("hubonnx_request_duration_seconds"))
            out += ["# HELP hubonnx_batch_size Texts per embedding/classification batch.",
                    "# TYPE hubonnx_batch_size histogram"]
            out += list(self.batch_size.lines("hubonnx_batch_size"))
            out += ["# HELP hubonnx_queue_depth Texts or generations waiting, per model.",
                    "# TYPE hubonnx_queue_depth gauge"]
            out += [f'hubonnx_queue_depth{{model="{_escape(m)}"}} {depth()}'
                    for m, depth in sorted(self.queue_depth.items())]
        return "\n".join(out) + "\n"
