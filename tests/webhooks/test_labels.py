"""A finished run's webhook body carries its labels."""

import json

import pytest

from webhooks.models import WebhookEvent

from .conftest import finish_run, make_endpoint, make_pipeline, make_run

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_webhook_body_carries_the_run_labels(receiver):
    make_endpoint(receiver.url)
    run = make_run(pipeline=make_pipeline(name="ledger"), labels={"team": "finance"})

    finish_run(run, labels={"env": "prod"})

    event = WebhookEvent.objects.get(run=run)
    assert json.loads(event.body)["data"]["labels"] == {"team": "finance", "env": "prod"}
