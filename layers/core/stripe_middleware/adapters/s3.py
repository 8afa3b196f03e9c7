"""S3: the event archive the churn model is retrained from, and the model artifacts."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

EVENTS_PREFIX = "events/"  # Firehose writes events/YYYY/MM/DD/HH/<stream>-<time>-<uuid>.gz, by arrival


def archive_prefix(moment: int) -> str:
    """The archive's key prefix of the hour `moment` (epoch seconds) arrived in, as Firehose names it."""
    return EVENTS_PREFIX + datetime.fromtimestamp(moment, UTC).strftime("%Y/%m/%d/%H/")


class S3EventArchive:
    """The archived events: gzipped JSON lines, one published detail per line, keyed by arrival time.
    `skipped` counts the lines that are not JSON objects and the files that cannot be decompressed."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._client, self._bucket = client, bucket
        self.skipped = 0
        self.files = 0

    def events(self, since: int) -> Iterator[dict[str, Any]]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=EVENTS_PREFIX, StartAfter=archive_prefix(since)
        )
        for page in pages:
            for entry in page.get("Contents", []):
                self.files += 1
                body = self._client.get_object(Bucket=self._bucket, Key=entry["Key"])["Body"].read()
                yield from self._lines(entry["Key"], body)

    def _lines(self, key: str, body: bytes) -> Iterator[dict[str, Any]]:
        try:
            text = gzip.decompress(body) if key.endswith(".gz") else body
        except (OSError, EOFError):  # a truncated or corrupt file: counted, the others still train
            self.skipped += 1
            return
        for line in text.splitlines():
            try:
                event = json.loads(line) if line.strip() else None
            except ValueError:
                event = None
            if isinstance(event, dict):
                yield event
            elif line.strip():
                self.skipped += 1


class S3ModelStore:
    def __init__(self, client: Any, bucket: str) -> None:
        self._client, self._bucket = client, bucket

    def read(self, key: str) -> str | None:
        try:
            body = self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except self._client.exceptions.NoSuchKey:
            return None
        return str(body.decode("utf-8"))

    def write(self, key: str, text: str) -> None:
        self._client.put_object(
            Bucket=self._bucket, Key=key, Body=text.encode("utf-8"), ContentType="application/json"
        )
