"""A real HTTP receiver on 127.0.0.1, run factories, and the worker run in-process."""

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command
from django.utils import timezone

from common.actors import Actor
from gateways.services import gateway_create
from pipelines.models import Pipeline
from runs.models import Run, RunStatus
from runs.services import run_update
from webhooks import services

_names = itertools.count()


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"ok":true}'
    headers: dict[str, str] = field(default_factory=dict)
    hang_seconds: float = 0.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    """Answers each POST with the next scripted reply (then 200) and records what it got."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.replies: list[Reply] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(
                        Received(
                            path=self.path,
                            headers={k.lower(): v for k, v in self.headers.items()},
                            body=body,
                            at=time.time(),
                        )
                    )
                    reply = receiver.replies.pop(0) if receiver.replies else Reply()
                if reply.hang_seconds:
                    receiver._release.wait(reply.hang_seconds)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def reply(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def json(self, index: int = -1) -> dict:
        return json.loads(self.requests[index].body)

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture(autouse=True)
def allow_private_urls(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True


def make_pipeline(**fields) -> Pipeline:
    fields.setdefault("name", f"pipeline-{next(_names)}")
    return Pipeline.objects.create(**fields)


def make_run(*, pipeline: Pipeline | None = None, gateway=None, **fields) -> Run:
    now = timezone.now()
    fields.setdefault("status", RunStatus.RUNNING)
    fields.setdefault("started_at", now)
    return Run.objects.create(pipeline=pipeline or make_pipeline(), gateway=gateway, **fields)


def make_gateway(**fields):
    return gateway_create(
        actor=Actor.system(), name=fields.pop("name", f"gateway-{next(_names)}"), **fields
    )


def make_endpoint(url: str, *, events=("run.succeeded", "run.failed", "run.canceled"), **fields):
    endpoint, _secret = services.webhook_endpoint_create(
        actor=Actor.system(), url=url, events=list(events), **fields
    )
    return endpoint


def finish_run(run: Run, status: str = RunStatus.SUCCEEDED, **changes) -> Run:
    """Finish a run through the run write path, which records the webhook event."""
    return run_update(run=run, changes={"status": status, **changes}, actor=Actor.system())


def run_worker() -> None:
    """Run every task that is due, in this process, the way `db_worker` does."""
    call_command(
        "db_worker", batch=True, startup_delay=False, reload=False, interval=0, verbosity=0
    )
