from django.core.management.base import BaseCommand, CommandError

from common.actors import Actor
from gateways.models import Gateway
from pipelines.models import Pipeline
from pipelines.services import pipeline_create, pipeline_update


class Command(BaseCommand):
    help = "Create a pipeline if it does not exist and print its id (the last line of output)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--gateway", help="Name of the default gateway for its runs.")
        parser.add_argument("--description", default="")

    def handle(self, *args, name: str, gateway: str | None, description: str, **options):
        actor = Actor.system()
        default_gateway = None
        if gateway:
            default_gateway = Gateway.objects.filter(name=gateway).first()
            if default_gateway is None:
                raise CommandError(f"No gateway named {gateway!r}.")
        pipeline = Pipeline.objects.filter(name=name).first()
        created = pipeline is None
        if pipeline is None:
            pipeline = pipeline_create(
                actor=actor, name=name, description=description, default_gateway=default_gateway
            )
        elif default_gateway and pipeline.default_gateway != default_gateway:
            pipeline = pipeline_update(
                actor=actor, pipeline=pipeline, changes={"default_gateway": default_gateway}
            )
        self.stdout.write(f"{'Created' if created else 'Found'} pipeline {pipeline.name}:")
        self.stdout.write(pipeline.public_id)
