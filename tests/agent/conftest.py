"""A real control plane for the runner side: gunicorn on loopback, on the test database.

The tests use ``transactional_db`` so that what they create is committed and the server
process sees it; the server can be stopped and started again on the same port mid-test.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.db import connection

from common.actors import Actor
from gateways.services import gateway_token_issue
from tests.factories import GatewayFactory, PipelineFactory

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_for_server() -> str:
    settings = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = settings["USER"] + (f":{settings['PASSWORD']}" if settings.get("PASSWORD") else "")
        host = settings["HOST"] or "127.0.0.1"
        return f"postgres://{auth}@{host}:{settings['PORT'] or 5432}/{settings['NAME']}"
    return f"sqlite:///{settings['NAME']}"


class Server:
    """``gunicorn config.wsgi`` bound to 127.0.0.1:``port``."""

    def __init__(self, tmp_path: Path, *, workers: int = 2, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"gunicorn-{self.port}.log"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url_for_server(),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "false",
            "SECURE_COOKIES": "false",
            "CONN_MAX_AGE": "0",
            "THROTTLE_GATEWAY": "100000/min",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.workers = workers
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives with the process
        self.process = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                "--threads",
                "4",
                "--graceful-timeout",
                "5",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/api/agent/runs", timeout=2).status_code == 401:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"gunicorn did not answer: {self.log_path.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGKILL) -> None:
        """Take the server away (SIGKILL: as a crash or a pulled cable would)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        self.process.wait(timeout=30)
        # The port must refuse connections before the caller goes on.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/api/agent/runs", timeout=0.5)
            except httpx.HTTPError:
                return
            time.sleep(0.1)


@pytest.fixture
def server(transactional_db, tmp_path):
    server = Server(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def edge(transactional_db):
    gateway = GatewayFactory(name="edge-agent")
    _, token = gateway_token_issue(actor=Actor.system(), gateway=gateway)
    return gateway, token


@pytest.fixture
def edge_pipeline(edge):
    return PipelineFactory(name="crm_to_warehouse", default_gateway=edge[0])


@pytest.fixture
def key_client_for_server(server, transactional_db):
    """An operator's API client (a superuser's key) for the live server."""
    from gateways.services import api_key_issue
    from tests.factories import UserFactory

    user = UserFactory(username="operator", is_superuser=True, is_staff=True)
    _, key = api_key_issue(actor=Actor.system(), user=user)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


class ResponseDroppingProxy:
    """A TCP proxy on loopback in front of the server that can lose answers: the request
    reaches the server (and is applied), the answer never reaches the client, as when a
    connection dies between the two. ``drop_patches`` answers of PATCH requests are lost."""

    def __init__(self, upstream_port: int):
        import threading

        self.upstream_port = upstream_port
        self.drop_patches = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            state = {"drop": False}
            threading.Thread(
                target=self._forward, args=(client, upstream, state), daemon=True
            ).start()
            threading.Thread(
                target=self._backward, args=(upstream, client, state), daemon=True
            ).start()

    def _forward(self, client, upstream, state) -> None:
        try:
            while data := client.recv(65536):
                if data.startswith(b"PATCH "):
                    with self._lock:
                        if self.drop_patches > 0:
                            self.drop_patches -= 1
                            state["drop"] = True
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            upstream.close()

    def _backward(self, upstream, client, state) -> None:
        try:
            while data := upstream.recv(65536):
                if state["drop"]:
                    with self._lock:
                        self.dropped += 1
                    break  # the server answered; the client never hears it
                client.sendall(data)
        except OSError:
            pass
        finally:
            client.close()
            upstream.close()

    def close(self) -> None:
        self._listener.close()
