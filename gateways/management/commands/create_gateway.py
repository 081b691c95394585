from django.core.management.base import BaseCommand

from common.actors import Actor
from gateways.models import Gateway
from gateways.services import gateway_create, gateway_token_issue


class Command(BaseCommand):
    help = "Create a gateway if it does not exist, issue a new token for it and print the token."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--token-name", default="", help="A label for the new token.")

    def handle(self, *args, name: str, token_name: str, **options):
        actor = Actor.system()
        gateway = Gateway.objects.filter(name=name).first()
        created = gateway is None
        if gateway is None:
            gateway = gateway_create(actor=actor, name=name)
        _, raw = gateway_token_issue(actor=actor, gateway=gateway, name=token_name)
        verb = "Created" if created else "Found"
        self.stdout.write(f"{verb} gateway {gateway.name} ({gateway.public_id}).")
        self.stdout.write("New gateway token (shown once; store it now):")
        self.stdout.write(raw)
