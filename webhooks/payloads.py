"""Webhook bodies, rendered once to the exact text that is signed, stored and resent."""

import json
from datetime import datetime
from typing import Any

from common.time import iso
from webhooks.models import TEST_EVENT_TYPE


def render(*, event_type: str, at: datetime, data: dict[str, Any]) -> str:
    return json.dumps(
        {"type": event_type, "timestamp": iso(at), "data": data},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def run_event_body(*, data: dict[str, Any], event_type: str, at: datetime) -> str:
    return render(event_type=event_type, at=at, data=data)


def test_event_body(*, endpoint_public_id: str, at: datetime) -> str:
    data = {
        "endpointId": endpoint_public_id,
        "message": "A test event: this endpoint is reachable and verifies signatures.",
    }
    return render(event_type=TEST_EVENT_TYPE, at=at, data=data)
