from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"

    def ready(self) -> None:
        from common.hooks import run_finished
        from webhooks.services import webhook_events_record_for_run

        run_finished.subscribe(webhook_events_record_for_run)
