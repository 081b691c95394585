from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from gateways.services import api_key_issue


class Command(BaseCommand):
    help = "Issue an API key for a user and print it (the last line of output)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label for the key.")
        parser.add_argument(
            "--create-user", action="store_true", help="Create the user if it does not exist."
        )

    def handle(self, *args, username: str, name: str, create_user: bool, **options):
        user_model = get_user_model()
        user = user_model.objects.filter(username=username).first()
        if user is None:
            if not create_user:
                raise CommandError(f"No user {username!r}; pass --create-user to create one.")
            user = user_model.objects.create_user(username=username)
        _, raw = api_key_issue(user=user, name=name)
        self.stdout.write(f"API key for {user.username} (shown once; store it now):")
        self.stdout.write(raw)
