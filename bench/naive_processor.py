"""Reference: the processor a competent engineer writes first.

Per record: Powertools idempotency (DynamoDB) around "PutItem the object, PutEvents the event".
"""

import json
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)


def make_processor(dynamodb: Any, events: Any, table: str, idempotency_table: str, bus: str) -> Any:
    persistence = DynamoDBPersistenceLayer(table_name=idempotency_table, boto3_client=dynamodb)
    config = IdempotencyConfig(event_key_jmespath="id", expires_after_seconds=35 * 24 * 3600)

    @idempotent_function(data_keyword_argument="event", persistence_store=persistence, config=config)
    def process(event: dict[str, Any]) -> str:
        obj = event["data"]["object"]
        dynamodb.put_item(
            TableName=table,
            Item={
                "pk": {"S": f"{obj.get('object')}#{obj.get('id')}"},
                "sk": {"S": "snapshot"},
                "event_id": {"S": event["id"]},
                "body": {"S": json.dumps(obj)},
            },
        )
        events.put_events(
            Entries=[
                {
                    "Source": "naive",
                    "DetailType": event["type"],
                    "Detail": json.dumps(event),
                    "EventBusName": bus,
                }
            ]
        )
        return event["id"]

    def handler(sqs_event: dict[str, Any], context: Any) -> dict[str, Any]:
        config.register_lambda_context(context)
        for record in sqs_event["Records"]:
            process(event=json.loads(record["body"]))
        return {"batchItemFailures": []}

    return handler
