"""Background work for webhooks, run by the ``worker`` process (django-tasks-db's db_worker).

``webhook_delivery_send`` sends one attempt of one delivery; it takes the delivery id and is
idempotent (a lease and the delivery's state make a second run a no-op). In a worker that runs
a ``SenderPool`` (``run_worker`` does) it hands the delivery to the pool and returns at once, so
a receiver that hangs holds a sender thread, never db_worker; elsewhere it sends inline.
``webhook_sweep`` is a periodic task (``settings.PERIODIC_TASKS``): it re-enqueues deliveries
that are overdue with no live lease, whose task was lost (a crash between commit and enqueue)
or whose worker died mid-send.
"""

from django.tasks import task

from common.locks import run_exclusively
from webhooks import senders, services


@task()
def webhook_delivery_send(delivery_id: int) -> bool:
    pool = senders.running_pool()
    if pool is not None:
        # Refused a slot (its endpoint has its share, or is paused): the pool's poll takes it
        # when one frees up.
        return pool.offer_delivery(delivery_id)
    return services.webhook_delivery_attempt(delivery_id=delivery_id) is not None


@task()
@run_exclusively
def webhook_sweep() -> int:
    return services.webhook_deliveries_enqueue_overdue()
