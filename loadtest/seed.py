"""Seed the load database through the project's own services (runs in the driver process)."""

import io
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import Group
from django.contrib.sessions.backends.db import SessionStore
from django.core.management import call_command
from django.db import connections

from common.actors import Actor
from common.roles import Role
from gateways.services import api_key_issue, gateway_create, gateway_token_issue
from pipelines.models import Pipeline


@dataclass
class Fixture:
    gateways: list[dict[str, str]]
    api_key: str
    analyst_cookies: list[str]
    webhook_secret: str | None


def migrate() -> None:
    call_command("migrate", verbosity=0, interactive=False)


def seed(*, gateways: int, analysts: int, history: int, receiver_url: str | None) -> Fixture:
    if history:
        # Past runs only give the analysts' pages something to page through; a failure here
        # says nothing about the system under load, so it is reported and the run goes on.
        try:
            call_command("seed_demo", runs=history, stdout=io.StringIO())
        except Exception as exc:
            print(f"! seed_demo --runs {history} failed, no history seeded: {exc}", flush=True)
            connections.close_all()
    fleet = []
    for index in range(gateways):
        gateway = gateway_create(actor=Actor.system(), name=f"lt-gw-{index:04d}")
        _, token = gateway_token_issue(actor=Actor.system(), gateway=gateway, name="load")
        pipeline = Pipeline.objects.create(name=f"lt_pipeline_{index:04d}", default_gateway=gateway)
        fleet.append({"token": token, "pipeline": pipeline.public_id})

    # An integration that makes runs, reads and cancels them: the runner and operator roles.
    client = get_user_model().objects.create_user(username="lt-api-client")
    client.groups.add(*Group.objects.filter(name__in=[Role.RUNNER, Role.OPERATOR]))
    _, api_key = api_key_issue(actor=Actor.system(), user=client, name="load")

    cookies = []
    for index in range(analysts):
        user = get_user_model().objects.create_user(username=f"lt-analyst-{index:02d}")
        user.groups.add(Group.objects.get(name=Role.VIEWER))
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={session.session_key}")

    secret = None
    if receiver_url:
        from webhooks.services import webhook_endpoint_create

        _, secret = webhook_endpoint_create(
            actor=Actor.system(),
            url=receiver_url,
            events=["run.succeeded", "run.failed", "run.canceled"],
            description="load test receiver",
        )
    connections.close_all()
    return Fixture(gateways=fleet, api_key=api_key, analyst_cookies=cookies, webhook_secret=secret)
