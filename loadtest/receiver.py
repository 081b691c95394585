"""A loopback webhook receiver that records every delivery it is sent.

It runs in a thread of the load driver. ``mode`` can be switched while it runs: ``ok`` answers
204 at once, ``slow`` waits ``slow_seconds`` before answering (so a worker can be killed while a
delivery is in flight), ``hang`` never answers until the receiver stops.
"""

import json
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Delivery:
    webhook_id: str
    event_type: str
    run_id: str | None
    received_at: float
    signature_ok: bool | None


@dataclass
class Receiver:
    secret: str | None = None
    mode: str = "ok"
    slow_seconds: float = 3.0
    deliveries: list[Delivery] = field(default_factory=list)
    in_flight: int = 0
    # webhook-id of every request as it arrives, before any answer (for the kill-worker fault).
    arrivals: list[tuple[float, str]] = field(default_factory=list)
    # webhook-id of requests whose sender hung up before the answer.
    interrupted: list[tuple[float, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet: the driver prints its own summary
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with receiver._lock:
                    receiver.in_flight += 1
                    receiver.arrivals.append((time.time(), self.headers.get("webhook-id", "")))
                try:
                    receiver._handle(self, raw)
                finally:
                    with receiver._lock:
                        receiver.in_flight -= 1

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="receiver", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        mode = self.mode
        if mode == "hang":
            # Hold the connection open, answering nothing, until the mode changes or we stop.
            while self.mode == "hang" and not self._stop.wait(0.2):
                pass
            return
        if mode == "slow":
            self._stop.wait(self.slow_seconds)
            if _peer_closed(handler.connection):
                # The sender died while we took our time: it never saw an answer, so this is not
                # a delivery (the sender must send it again).
                with self._lock:
                    self.interrupted.append((time.time(), handler.headers.get("webhook-id", "")))
                return
        headers = handler.headers
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        data = body.get("data") if isinstance(body, dict) else None
        run_id = data.get("id") if isinstance(data, dict) else None
        delivery = Delivery(
            webhook_id=headers.get("webhook-id", ""),
            event_type=body.get("type", "") if isinstance(body, dict) else "",
            run_id=run_id,
            received_at=time.time(),
            signature_ok=self._verify(raw, headers),
        )
        with self._lock:
            self.deliveries.append(delivery)
        handler.send_response(204)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _verify(self, raw: bytes, headers) -> bool | None:
        if not self.secret:
            return None
        try:
            from standardwebhooks.webhooks import Webhook

            Webhook(self.secret).verify(raw, dict(headers.items()))
        except Exception:
            return False
        return True

    def snapshot(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)


def _peer_closed(sock: socket.socket) -> bool:
    """True when the other end has closed the connection (a readable socket with no data)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
