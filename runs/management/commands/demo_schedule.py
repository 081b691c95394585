"""Queue scheduled-looking runs for the demo gateway, for as long as the demo runs.

Every ``--every`` seconds (jittered) it queues a run of one of the pipelines the gateway config
names, with trigger ``schedule``, unless ``--max-queued`` runs are already waiting for the
gateway (so a stopped agent does not come back to a pile of work).
"""

import random
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from common.actors import Actor
from eltrunner.config import ConfigError, load_config
from gateways.models import Gateway
from gateways.services import gateway_create
from pipelines.models import Pipeline
from pipelines.services import pipeline_create
from runs.models import Run, RunStatus, TriggerType
from runs.services import run_trigger


class Command(BaseCommand):
    help = "Queue a scheduled run for the demo gateway every few seconds (Ctrl-C stops)."

    def add_arguments(self, parser):
        parser.add_argument("--gateway", default="demo-gateway")
        parser.add_argument("--config", default="demo/gateway.toml", help="its elt-gateway config")
        parser.add_argument("--every", type=float, default=25.0, help="seconds between runs")
        parser.add_argument("--max-queued", type=int, default=4)
        parser.add_argument("--count", type=int, default=0, help="stop after N runs (0: never)")

    def handle(
        self, *args, gateway: str, config: str, every: float, max_queued: int, count: int, **options
    ):
        try:
            # The agent's own reader of its config, which names the line of a fault.
            names = list(load_config(config).pipelines)
        except ConfigError as exc:
            raise CommandError(str(exc)) from exc
        # The demo's scheduler acts as the system, as a real scheduler would.
        actor = Actor.system()
        target = Gateway.objects.filter(name=gateway).first() or gateway_create(
            actor=actor, name=gateway
        )
        pipelines = []
        for name in names:
            pipeline = Pipeline.objects.filter(name=name).first()
            pipelines.append(
                pipeline or pipeline_create(actor=actor, name=name, default_gateway=target)
            )
        rng = random.Random()
        queued_total = 0
        self.stdout.write(
            f"Queuing a scheduled run for {target.name} about every {every:g}s ({', '.join(names)})"
        )
        while not count or queued_total < count:
            close_old_connections()
            waiting = Run.objects.filter(gateway=target, status=RunStatus.QUEUED).count()
            if waiting < max_queued:
                pipeline = rng.choice(pipelines)
                run = run_trigger(
                    actor=actor,
                    pipeline=pipeline,
                    gateway=target,
                    trigger_type=TriggerType.SCHEDULE,
                    trigger={"scheduleId": f"sch_{pipeline.name}", "cron": "*/15 * * * *"},
                )
                queued_total += 1
                self.stdout.write(f"queued {run.public_id} ({pipeline.name})")
            if count and queued_total >= count:
                break
            time.sleep(every * rng.uniform(0.5, 1.5))
