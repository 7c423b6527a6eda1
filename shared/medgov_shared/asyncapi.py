"""AsyncAPI 3.0 document and JSON Schemas generated from the topic registry.

`python -m medgov_shared.asyncapi docs/` writes docs/asyncapi.yaml and
docs/schemas/<Event>.v<N>.json; a test fails when the committed copies differ
from what this module generates.
"""

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.envelope import Envelope
from medgov_shared.contracts.events import inbound
from medgov_shared.contracts.registry import SERVICE_TOPICS, all_event_types, dlq_topic


def schema_name(cls: type[EventPayload]) -> str:
    return f"{cls.event_type}.v{cls.schema_version}"


def payload_schema(cls: type[EventPayload]) -> dict[str, Any]:
    schema = cls.model_json_schema(mode="validation", ref_template="#/$defs/{model}")
    schema["$id"] = cls.dataschema()
    schema["description"] = (cls.__doc__ or "").strip()
    return schema


def _envelope_schema(cls: type[EventPayload]) -> dict[str, Any]:
    envelope = Envelope.model_json_schema(mode="validation")
    envelope["properties"]["type"] = {"const": cls.event_type, "description": "Event name."}
    envelope["properties"]["dataschema"] = {"const": cls.dataschema(), "description": "Versioned schema of data."}
    data_schema = payload_schema(cls)
    data_schema.pop("$id", None)
    defs = data_schema.pop("$defs", {})
    envelope["properties"]["data"] = data_schema
    if defs:
        envelope.setdefault("$defs", {}).update(defs)
    return envelope


def _message(cls: type[EventPayload], key: str) -> dict[str, Any]:
    return {
        "name": cls.event_type,
        "title": cls.event_type,
        "summary": (cls.__doc__ or "").strip().splitlines()[0],
        "contentType": "application/cloudevents+json",
        "headers": {
            "type": "object",
            "properties": {
                "traceparent": {"type": "string", "description": "W3C trace context."},
                "tracestate": {"type": "string", "description": "W3C trace state."},
            },
        },
        "bindings": {"kafka": {"key": {"type": "string", "description": f"The {key}."}}},
        "payload": {"$ref": f"#/components/schemas/{schema_name(cls)}"},
    }


@cache
def build() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}

    for cls in all_event_types():
        messages[cls.event_type] = _message(cls, cls.key_field)
        schemas[schema_name(cls)] = _envelope_schema(cls)

    for topic in SERVICE_TOPICS:
        channel_id = topic.owner
        channels[channel_id] = {
            "address": topic.name,
            "description": f"{topic.description} Key: {topic.key}. Dead letters: {dlq_topic(topic.name)}.",
            "messages": {cls.event_type: {"$ref": f"#/components/messages/{cls.event_type}"} for cls in topic.events},
        }
        operations[f"{topic.owner}.publish"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"The {topic.owner} service publishes through its outbox.",
        }
        for consumer in topic.consumers:
            operations[f"{consumer}.consume.{topic.owner}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "summary": f"The {consumer} service consumes with group medgov-{consumer}.",
            }

    channels["inbound"] = {
        "address": "medgov.inbound.{institution_id}.v1",
        "description": "Commands one hospital or vendor sends; only that institution may write its topic.",
        "parameters": {"institution_id": {"description": "Registered institution id, e.g. knuh."}},
        "messages": {cls.event_type: {"$ref": f"#/components/messages/{cls.event_type}"} for cls in inbound.EVENTS},
    }
    operations["hospital.publish"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/inbound"},
        "summary": "A hospital publishes commands with the medgov publisher (pseudonymized).",
    }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "medgov events",
            "version": "1.0.0",
            "description": (
                "Events exchanged by the medgov services. Every message is a CloudEvents 1.0 "
                "structured-mode JSON object with the extensions region, correlationid and causationid. "
                "Generated from medgov_shared.contracts.registry; do not edit by hand."
            ),
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def asyncapi_yaml() -> str:
    return yaml.safe_dump(build(), sort_keys=False, allow_unicode=True, width=120)


def json_schemas() -> dict[str, str]:
    """File name -> JSON text of each payload schema."""
    return {
        f"{schema_name(cls)}.json": json.dumps(payload_schema(cls), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        for cls in all_event_types()
    }


def write(docs: Path) -> None:
    (docs / "schemas").mkdir(parents=True, exist_ok=True)
    (docs / "asyncapi.yaml").write_text(asyncapi_yaml(), encoding="utf-8")
    for name, text in json_schemas().items():
        (docs / "schemas" / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
