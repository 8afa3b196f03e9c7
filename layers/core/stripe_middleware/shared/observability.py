"""Structured JSON logs and CloudWatch metrics for the ingest hot path.

The ingest function must start fast (see `make bench`), so it does not import Powertools: this module
writes the same two things Powertools does, a JSON log line per record with a correlation id and
CloudWatch Embedded Metric Format (EMF) documents on stdout, with the same namespace and `service`
dimension, so dashboards and alarms treat every function alike. Other functions use Powertools.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections import defaultdict
from typing import Any

from stripe_middleware.shared.contract import METRICS_NAMESPACE, SERVICE

METRICS_NAMESPACE_ENV = "POWERTOOLS_METRICS_NAMESPACE"
SERVICE_ENV = "POWERTOOLS_SERVICE_NAME"


_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}


class JsonLogger:
    """`logger.info("message", key=value)`: one JSON line on stdout with service and correlation id."""

    def __init__(self, service: str | None = None) -> None:
        self.service = service or os.environ.get(SERVICE_ENV, SERVICE)
        self.level = _LEVELS.get(os.environ.get("LOG_LEVEL", "INFO").upper(), 20)
        self.correlation_id: str | None = None

    def set_correlation_id(self, value: str | None) -> None:
        self.correlation_id = value

    def _write(self, level: str, message: str, fields: dict[str, Any], exc: bool = False) -> None:
        if _LEVELS[level] < self.level:
            return
        entry: dict[str, Any] = {
            "level": level,
            "message": message,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "service": self.service,
            "correlation_id": self.correlation_id,
            **fields,
        }
        if exc and sys.exc_info()[0] is not None:
            entry["exception"] = traceback.format_exc()
        print(json.dumps(entry, default=str), file=sys.stdout, flush=True)

    def info(self, message: str, **fields: Any) -> None:
        self._write("INFO", message, fields)

    def warning(self, message: str, **fields: Any) -> None:
        self._write("WARNING", message, fields)

    def exception(self, message: str, **fields: Any) -> None:
        self._write("ERROR", message, fields, exc=True)


class EmfMetrics:
    """Collects counters during one invocation and flushes them as EMF, one document per dimension set."""

    def __init__(self, namespace: str | None = None, service: str | None = None) -> None:
        self.namespace = namespace or os.environ.get(METRICS_NAMESPACE_ENV, METRICS_NAMESPACE)
        self.service = service or os.environ.get(SERVICE_ENV, SERVICE)
        self._values: dict[tuple[tuple[str, str], ...], dict[str, tuple[str, float]]] = defaultdict(dict)

    def add(self, name: str, value: float = 1, unit: str = "Count", **dimensions: str) -> None:
        key = tuple(sorted({"service": self.service, **dimensions}.items()))
        _, previous = self._values[key].get(name, (unit, 0.0))
        self._values[key][name] = (unit, previous + value)

    def flush(self) -> list[dict[str, Any]]:
        documents = []
        for dimensions, metrics in self._values.items():
            document: dict[str, Any] = {
                "_aws": {
                    "Timestamp": int(time.time() * 1000),
                    "CloudWatchMetrics": [
                        {
                            "Namespace": self.namespace,
                            "Dimensions": [[name for name, _ in dimensions]],
                            "Metrics": [{"Name": n, "Unit": u} for n, (u, _) in metrics.items()],
                        }
                    ],
                },
                **dict(dimensions),
                **{n: v for n, (_, v) in metrics.items()},
            }
            print(json.dumps(document), flush=True)
            documents.append(document)
        self._values.clear()
        return documents
