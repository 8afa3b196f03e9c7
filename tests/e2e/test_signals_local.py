"""The issue's "done when", on local mode: a simulated history, signed and sent like Stripe's deliveries,
makes anomaly and churn-risk signals appear on the bus and through the read API, with reasons in words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stripe_middleware_dev.simulate import read_labels
from tests.e2e.conftest import LocalStack, eventually, get


def test_a_simulated_history_raises_its_attacks_and_churn_risks(
    local_stack: LocalStack, subscriber: Any, tmp_path: Path
) -> None:
    history, labels_path = tmp_path / "history.jsonl.gz", tmp_path / "labels.json"
    simulated = local_stack.cli(
        *("simulate", "--customers", "12", "--months", "2", "--seed", "3", "--start", "2026-09-01"),
        *(
            "--attacks",
            "duplicate_charge=1,trial_abuse=1",
            "--out",
            str(history),
            "--labels",
            str(labels_path),
        ),
    )
    assert simulated.returncode == 0, simulated.stderr
    sent = local_stack.cli("send", "--history", str(history))
    assert sent.returncode == 0, sent.stdout + sent.stderr
    labels = read_labels(labels_path)
    attacks = {a.kind: a for a in labels.attacks}

    def signals(detail_type: str) -> list[dict[str, Any]]:
        return [p["detail"] for p in subscriber() if p["detail-type"] == detail_type]

    def raised() -> dict[str, dict[str, Any]] | None:
        found = {a["kind"]: a for a in signals("stripe-middleware.signal.anomaly")}
        return found if {"duplicate_charge", "trial_abuse"} <= set(found) else None

    anomalies = eventually(raised, timeout=120)
    assert anomalies["duplicate_charge"]["customer_id"] in attacks["duplicate_charge"].customers
    # The finding rests on the attack's own events, and says so in words.
    evidence = set(anomalies["trial_abuse"]["evidence"]["event_ids"])
    assert len(evidence & set(attacks["trial_abuse"].event_ids)) >= 3  # at least three customers' trials
    assert "customers" in anomalies["trial_abuse"]["reasons"][0]["text"]
    churn = eventually(lambda: signals("stripe-middleware.signal.churn_risk"), timeout=60)
    assert all(c["reasons"] and all(r["text"] for r in c["reasons"]) for c in churn)

    def recorded() -> tuple[str, dict[str, Any]] | None:
        """A customer the read API shows a churn risk for: one whose risk was published and who still has a
        live subscription (a risk is recorded just after publication, and dropped once the subscription
        ends)."""
        for customer in sorted({c["customer_id"] for c in churn}):
            status, body = get(local_stack, f"/v1/customers/{customer}/signals")
            assert status == 200
            if body["churn_risk"]:
                return customer, body
        return None

    customer, body = eventually(recorded, timeout=30)
    published = {
        c["signal_id"] for c in signals("stripe-middleware.signal.churn_risk") if c["customer_id"] == customer
    }
    assert [c["customer_id"] for c in body["churn_risk"]] == [customer]
    assert body["churn_risk"][0]["signal_id"] in published  # the detail the bus carried
    assert body["churn_risk"][0]["reasons"][0]["text"]
    status, page = get(local_stack, "/v1/signals?kind=trial_abuse&since=2026-08-01")
    assert status == 200 and [s["signal_id"] for s in page["signals"]] == [
        anomalies["trial_abuse"]["signal_id"]
    ]
