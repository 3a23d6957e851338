"""Metrics of a worker process: open connections, hand-overs to siblings, slow clients.

Imported only in workers, after ``server.serve`` has pointed prometheus_client at its
multi-process folder, so these aggregate across workers like those in ``metrics.py`` (and the
supervisor shows no per-pid gauge). The restart counter lives in ``supervisor.py``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

WORKER_CONNECTIONS = Gauge(
    "thumbor_py_worker_connections",
    "Client connections open in each worker process (label pid).",
    multiprocess_mode="liveall",
)
CONNECTIONS_HANDED_OVER = Counter(
    "thumbor_py_connections_handed_over",
    "Accepted connections passed to a less loaded sibling worker.",
)
HEADER_TIMEOUTS = Counter(
    "thumbor_py_header_timeouts",
    "Connections closed because no request head arrived within server.header_timeout.",
)
