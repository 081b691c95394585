"""Background work for webhooks, run by ``manage.py db_worker`` (django-tasks-db).

``webhook_delivery_send`` sends one attempt of one delivery; it takes the delivery id and is
idempotent (a lease and the delivery's state make a second run a no-op). ``webhook_sweep``
re-enqueues overdue deliveries and keeps itself scheduled: every run first enqueues its
successor, so a worker dying mid-sweep does not end the chain.
"""

from datetime import timedelta

from django.conf import settings
from django.tasks import task
from django.utils import timezone

from webhooks import services


@task()
def webhook_delivery_send(delivery_id: int) -> bool:
    return services.webhook_delivery_attempt(delivery_id=delivery_id) is not None


@task()
def webhook_sweep() -> int:
    webhook_sweep_ensure_scheduled()
    return services.webhook_deliveries_enqueue_overdue()


def _waiting_sweeps():
    """Sweeps waiting to run, when the backend is django-tasks-db (None when it cannot tell).

    Only READY ones count: a RUNNING row may belong to a worker that died.
    """
    from django_tasks_db.backend import DatabaseBackend
    from django_tasks_db.models import DBTaskResult

    if not isinstance(webhook_sweep.get_backend(), DatabaseBackend):
        return None
    return DBTaskResult.objects.filter(task_path=webhook_sweep.module_path, status="READY")


def webhook_sweep_ensure_scheduled() -> None:
    """Enqueue the next sweep unless one is already waiting; prune old finished sweeps."""
    waiting = _waiting_sweeps()
    if waiting is None:
        return
    now = timezone.now()
    if not waiting.exists():
        interval = timedelta(seconds=settings.WEBHOOK_SWEEP_INTERVAL_SECONDS)
        webhook_sweep.using(run_after=now + interval).enqueue()
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.filter(
        task_path=webhook_sweep.module_path,
        status__in=["SUCCESSFUL", "FAILED"],
        finished_at__lt=now - timedelta(hours=1),
    ).delete()
