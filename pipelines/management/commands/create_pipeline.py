from django.core.management.base import BaseCommand, CommandError

from gateways.models import Gateway
from pipelines.models import Pipeline


class Command(BaseCommand):
    help = "Create a pipeline if it does not exist and print its id (the last line of output)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--gateway", help="Name of the default gateway for its runs.")
        parser.add_argument("--description", default="")

    def handle(self, *args, name: str, gateway: str | None, description: str, **options):
        default_gateway = None
        if gateway:
            default_gateway = Gateway.objects.filter(name=gateway).first()
            if default_gateway is None:
                raise CommandError(f"No gateway named {gateway!r}.")
        pipeline, created = Pipeline.objects.get_or_create(
            name=name, defaults={"default_gateway": default_gateway, "description": description}
        )
        if not created and default_gateway and pipeline.default_gateway != default_gateway:
            pipeline.default_gateway = default_gateway
            pipeline.save(update_fields=["default_gateway", "updated_at"])
        self.stdout.write(f"{'Created' if created else 'Found'} pipeline {pipeline.name}:")
        self.stdout.write(pipeline.public_id)
