"""5. Gateway throughput: 4 concurrent gateway workers against a fake Stripe limited to 25 req/s.

AWS is moto's server on loopback (thread-safe, real HTTP); the gateway is configured for the fake's whole
limit (share 1.0). Reports achieved throughput / limit, failed commands and duplicate creations.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.measure import moto_server

LIMIT = 25


def run(commands: int = 250, workers: int = 4) -> dict[str, Any]:
    import boto3

    from stripe_middleware.shared.contract import STRIPE_API_VERSION
    from stripe_middleware_dev.local.event_source import SqsEventSource
    from stripe_middleware_dev.tables import create_table_request
    from tests.fakes.stripe_server import fake_stripe

    config_file = Path(tempfile.mkdtemp()) / "gateway.yaml"
    config_file.write_text(
        "version: 1\noperations: [customers.create]\nmax_attempts: 8\n"
        f"rate_limit: {{share: 1.0, live_per_second: 100, test_per_second: {LIMIT}, per_endpoint_per_second: {LIMIT}}}\n"
    )
    with moto_server(), fake_stripe() as stripe_server:  # moto_server restores the environment on exit
        os.environ.update(GATEWAY_CONFIG_PATH=str(config_file))
        stripe_server.rate_limit = LIMIT
        sqs = boto3.client("sqs")
        boto3.client("dynamodb").create_table(**create_table_request("store"))
        boto3.client("events").create_event_bus(Name="bus")
        queue = sqs.create_queue(QueueName="commands")["QueueUrl"]
        dlq = sqs.create_queue(QueueName="commands-dlq")["QueueUrl"]
        key = boto3.client("secretsmanager").create_secret(Name="key", SecretString="rk_test_bench")["ARN"]
        os.environ.update(
            TABLE_NAME="store",
            COMMANDS_QUEUE_URL=queue,
            COMMANDS_DLQ_URL=dlq,
            EVENT_BUS_NAME="bus",
            STRIPE_API_VERSION=STRIPE_API_VERSION,
            STRIPE_API_KEY_SECRET_ID=key,
            STRIPE_API_BASE=stripe_server.url,
        )
        from functions.gateway import handler as gateway
        from stripe_middleware.commands.config import load_gateway_config

        load_gateway_config.cache_clear()
        gateway.dependencies.cache_clear()
        gateway.dependencies()
        metadata = {"erp_id": "NS-100200", "crm_account_id": "001A00000abcDEF"}
        for start in range(0, commands, 10):
            sqs.send_message_batch(
                QueueUrl=queue,
                Entries=[
                    {
                        "Id": str(i),
                        "MessageBody": json.dumps(
                            {
                                "operation": "customers.create",
                                "params": {"metadata": metadata},
                                "idempotency_key": f"bench-{start + i}",
                            }
                        ),
                    }
                    for i in range(min(10, commands - start))
                ],
            )

        class Context:
            function_name, memory_limit_in_mb, aws_request_id = "gateway", 512, "bench"
            invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:gateway"

        def worker() -> None:
            def invoke(event: dict[str, Any], context: Any) -> Any:
                return gateway.handler(event, Context())

            source = SqsEventSource(
                boto3.client("sqs"),
                queue,
                "arn:aws:sqs:us-east-1:123456789012:commands",
                invoke,
                batch_size=5,
                retry_delay_seconds=1,
            )
            idle = 0
            while idle < 3:
                idle = idle + 1 if source.poll_once() == 0 else 0

        started = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        posts = [r for r in stripe_server.requests if r.method == "POST"]
        ok = [r for r in posts if r.status == 200]
        elapsed = max(r.at for r in ok) - min(r.at for r in ok)
        throughput = (len(ok) - 1) / elapsed if elapsed > 0 else 0.0
        failed = commands - len(stripe_server.created)
        duplicates = len(stripe_server.created) - len({r.headers.get("idempotency-key") for r in ok})
        result = {
            "commands": commands,
            "workers": workers,
            "limit_per_second": LIMIT,
            "achieved_per_second": round(throughput, 2),
            "throughput_over_limit": round(throughput / LIMIT, 3),
            "stripe_429s": sum(1 for r in posts if r.status == 429),
            "failed_commands": max(0, failed),
            "duplicate_creations": duplicates,
            "wall_seconds": round(time.monotonic() - started, 1),
            "target": ">= 0.95 of the limit, 0 failed, 0 duplicates",
        }
        result["met"] = result["throughput_over_limit"] >= 0.95 and failed == 0 and duplicates == 0
        return result
