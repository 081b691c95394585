import pytest

from webhooks.models import DeliveryStatus, WebhookAttempt
from webhooks.selectors import webhook_deliveries_for_run

from .conftest import finish_run, make_endpoint, make_run, run_worker

pytestmark = pytest.mark.django_db(transaction=True)


def test_deliveries_for_run_load_in_two_queries(receiver, django_assert_num_queries):
    for index in range(4):
        make_endpoint(f"{receiver.url}/{index}")
    run = finish_run(make_run())
    run_worker()
    other = finish_run(make_run())

    with django_assert_num_queries(2):
        deliveries = list(webhook_deliveries_for_run(run=run))
        rows = [
            (d.endpoint.url, d.event.type, d.status, [a.status_code for a in d.attempts.all()])
            for d in deliveries
        ]
    assert len(rows) == 4
    assert all(row[1:] == ("run.succeeded", DeliveryStatus.SUCCEEDED, [200]) for row in rows)
    assert all(d.event.run_id == run.pk for d in deliveries)
    assert len(webhook_deliveries_for_run(run=other)) == 4


def test_a_url_that_turned_private_is_refused_at_send_time(receiver, settings):
    make_endpoint(receiver.url)  # allowed while the setting is on
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False
    finish_run(make_run())
    run_worker()
    assert receiver.requests == []
    attempt = WebhookAttempt.objects.get()
    assert attempt.error.startswith("Refused:") and "loopback" in attempt.error
