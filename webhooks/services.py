def webhook_events_record_for_run(*, run) -> None:
    """Record the outbox events of a run that has just become final."""
