from __future__ import annotations

import json
from typing import Any

import pytest

from stripe_middleware.adapters.eventbridge import EventPublisher
from stripe_middleware.adapters.secrets import SecretsManagerSigningSecrets, parse_signing_secrets
from stripe_middleware.ingest.settings import IngestSettings
from stripe_middleware.shared.errors import ConfigurationError, SecretUnavailableError
from stripe_middleware.shared.http import raw_body, route_key
from stripe_middleware.shared.publishing import Publication


class RecordingEvents:
    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": str(i)} for i in range(len(Entries))]}


def publication(key: str, size: int) -> Publication:
    return Publication(key=key, detail_type="invoice.paid", detail={"blob": "x" * size})


def test_put_events_batches_by_ten_entries() -> None:
    events = RecordingEvents()
    assert EventPublisher(events, "bus").publish([publication(str(i), 10) for i in range(25)]) == set()
    assert [len(c) for c in events.calls] == [10, 10, 5]


def test_put_events_batches_by_request_size() -> None:
    events = RecordingEvents()
    EventPublisher(events, "bus").publish([publication(str(i), 100_000) for i in range(5)])
    assert [len(c) for c in events.calls] == [2, 2, 1]
    for call in events.calls:
        assert sum(len(e["Detail"]) for e in call) < 256 * 1024


def test_a_failed_put_events_call_fails_its_entries_only() -> None:
    class Flaky(RecordingEvents):
        def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            if len(self.calls) == 0:
                self.calls.append(Entries)
                raise ConnectionError("network")
            return super().put_events(Entries)

    failed = EventPublisher(Flaky(), "bus").publish([publication(str(i), 10) for i in range(12)])
    assert failed == {str(i) for i in range(10)}


def test_signing_secret_formats() -> None:
    assert parse_signing_secrets("whsec_a") == ("whsec_a",)
    assert parse_signing_secrets(json.dumps({"current": "whsec_a", "previous": "whsec_b"})) == (
        "whsec_a",
        "whsec_b",
    )
    assert parse_signing_secrets(json.dumps({"current": "whsec_a", "previous": ""})) == ("whsec_a",)
    with pytest.raises(SecretUnavailableError):
        parse_signing_secrets("  ")


def test_secrets_are_cached_for_the_ttl() -> None:
    class Client:
        calls = 0

        def get_secret_value(self, SecretId: str) -> dict[str, str]:
            self.calls += 1
            return {"SecretString": "whsec_x"}

    client, now = Client(), [0.0]
    cache = SecretsManagerSigningSecrets(client, ttl_seconds=300, clock=lambda: now[0])
    cache.get("s")
    now[0] = 299
    cache.get("s")
    assert client.calls == 1
    now[0] = 301
    cache.get("s")
    assert client.calls == 2


def test_a_secret_is_read_again_for_an_unverified_signature_at_most_every_30_seconds() -> None:
    class Client:
        calls, value = 0, "whsec_placeholder"

        def get_secret_value(self, SecretId: str) -> dict[str, str]:
            self.calls += 1
            return {"SecretString": self.value}

    client, now = Client(), [0.0]
    cache = SecretsManagerSigningSecrets(client, ttl_seconds=300, clock=lambda: now[0])
    assert cache.refreshed("s") is None and client.calls == 0  # nothing cached: get() reads it anyway
    assert cache.get("s") == ("whsec_placeholder",)
    client.value = "whsec_registered"  # the registration writes the endpoint's secret
    now[0] = 29
    assert cache.refreshed("s") is None and client.calls == 1  # too soon: a forged signature costs no call
    now[0] = 31
    assert cache.refreshed("s") == ("whsec_registered",) and client.calls == 2
    assert cache.get("s") == ("whsec_registered",) and client.calls == 2  # cached anew
    now[0] = 62
    assert cache.refreshed("s") is None and client.calls == 3  # read again, unchanged: nothing new to try


def test_settings_refuse_missing_and_invalid_values() -> None:
    base = {"EVENTS_QUEUE_URL": "q", "WEBHOOK_SECRET_ID": "a", "CONNECT_WEBHOOK_SECRET_ID": "b"}
    assert IngestSettings.from_env(base).tolerance_seconds == 300
    with pytest.raises(ConfigurationError, match="EVENTS_QUEUE_URL"):
        IngestSettings.from_env({**base, "EVENTS_QUEUE_URL": ""})
    with pytest.raises(ConfigurationError, match="positive integer"):
        IngestSettings.from_env({**base, "SIGNATURE_TOLERANCE_SECONDS": "-5"})


def test_apigw_adapter_reads_route_and_body() -> None:
    event = {
        "routeKey": "$default",
        "rawPath": "/x",
        "requestContext": {"http": {"method": "POST"}},
        "body": None,
    }
    assert route_key(event) == "POST /x"
    assert raw_body(event) == b""
