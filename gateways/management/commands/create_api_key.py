from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from common.actors import Actor
from common.errors import DomainError
from common.roles import Role
from common.services import user_role_set
from gateways.services import api_key_issue


class Command(BaseCommand):
    help = "Issue an API key for a user and print it (the last line of output)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label for the key.")
        parser.add_argument(
            "--create-user", action="store_true", help="Create the user if it does not exist."
        )
        parser.add_argument(
            "--role",
            choices=[role.value for role in Role],
            help="The user's role: viewer (reads), runner (creates and reports on runs), "
            "operator (reads, cancels, triggers, re-runs). A new user is a viewer unless this "
            "says otherwise; an existing user keeps their roles unless this is given.",
        )

    def handle(self, *args, username: str, name: str, create_user: bool, role: str | None, **_):
        actor = Actor.system()
        user_model = get_user_model()
        user = user_model.objects.filter(username=username).first()
        if user is None:
            if not create_user:
                raise CommandError(f"No user {username!r}; pass --create-user to create one.")
            user = user_model.objects.create_user(username=username)
            role = role or Role.VIEWER
        try:
            if role:
                user_role_set(actor=actor, user=user, role=role)
            _, raw = api_key_issue(actor=actor, user=user, name=name)
        except DomainError as error:
            raise CommandError(error.message) from None
        roles = ", ".join(user.groups.order_by("name").values_list("name", flat=True)) or "none"
        self.stdout.write(f"API key for {user.username}, role: {roles} (shown once; store it now):")
        self.stdout.write(raw)
