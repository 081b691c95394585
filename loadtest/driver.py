"""The simulated fleet: gateways that claim and report on runs, analysts, and API clients.

Every write a runner makes carries an ``Idempotency-Key`` and a marker the database check can
find again (``[lt:<run>:L<n>]`` in a log message, ``ltSeq`` in a telemetry sample). When the
server answers 2xx the driver writes an ``ack`` line to the journal; the journal, not the
driver's memory, is what the database is checked against afterwards. A write that timed out or
got a 5xx/429 is retried with the same key until it is acknowledged or its deadline passes.

The driver shares the machine with the server it loads, so every millisecond of its CPU is taken
from the server: it speaks HTTP through one aiohttp session and reads each answer once.
"""

import asyncio
import functools
import json
import random
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

RETRYABLE_STATUS = {429, 502, 503, 504}
XSS_PAYLOADS = [
    "<script>alert('lt')</script>",
    '"onmouseover="alert(1)',
    "<img src=x onerror=alert(1)>",
]
SECRETS = ["password=hunter2", "postgres://etl:s3cret@db.internal:5432/crm"]
# Compact JSON request bodies.
dumps = functools.partial(json.dumps, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@dataclass
class Config:
    base_url: str
    duration: float
    gateways: list[dict[str, str]]  # {"token", "pipeline"}
    api_key: str
    analyst_cookies: list[str]
    api_clients: int = 5
    # A person reads a page before the next click: seconds between an analyst's visits.
    analyst_think_seconds: tuple[float, float] = (4.0, 10.0)
    poll_interval: float = 10.0
    log_interval: float = 3.0
    sample_interval: float = 5.0
    run_seconds: tuple[float, float] = (20.0, 60.0)
    runs_per_gateway: int = 1
    duplicate_claim_rate: float = 0.05
    cancel_rate: float = 0.03
    minimal_rate: float = 0.8
    request_timeout: float = 10.0
    # Fraction of runner PATCHes sent with a tiny client timeout, then retried with the same key.
    short_timeout_rate: float = 0.0
    short_timeout: float = 0.02
    write_deadline: float = 120.0
    # Without keys a retried append may be stored twice: the retry fault shows the check sees it.
    idempotency_keys: bool = True
    drain_seconds: float = 90.0
    pages: bool = True
    read_api: bool = True
    seed: int = 1


@dataclass
class Stats:
    started: float = field(default_factory=time.monotonic)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    codes: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    # (monotonic second since start, name, code) of every non-2xx answer, for fault timelines.
    failures: list[tuple[float, str, str]] = field(default_factory=list)
    bad_503_bodies: int = 0
    # Seconds since ``started`` at which the load phase ended (the drain follows); None before.
    load_ended: float | None = None

    # (monotonic second since start, name, latency) of every answer, for before/after figures.
    timeline: list[tuple[float, str, float]] = field(default_factory=list)

    def record(self, name: str, code: int | str, seconds: float) -> None:
        self.timeline.append((time.monotonic() - self.started, name, seconds))
        self.latencies[name].append(seconds)
        self.codes[name][code] += 1
        if not (isinstance(code, int) and 200 <= code < 300):
            self.failures.append((time.monotonic() - self.started, name, str(code)))


class Journal:
    """Append-only JSON lines: what was sent and what the server acknowledged."""

    def __init__(self, path: Path):
        self.path = path
        self._file = path.open("a", buffering=1)

    def write(self, **entry: Any) -> None:
        entry["t"] = round(time.time(), 3)
        self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._file.close()


class Response:
    """An answer, read once: status, headers and body."""

    __slots__ = ("_json", "content", "headers", "status_code")

    def __init__(self, status_code: int, headers, content: bytes):
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self._json: Any = None

    def json(self) -> Any:
        if self._json is None:
            self._json = json.loads(self.content)
        return self._json

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class Fleet:
    def __init__(self, config: Config, journal: Journal, stats: Stats):
        self.config = config
        self.journal = journal
        self.stats = stats
        self.rng = random.Random(config.seed)
        self.loading = True  # False once the load phase ends: no new runs, finish what runs
        self.hard_stop = False
        self.active_runs: dict[int, set[str]] = defaultdict(set)
        self.claimed: set[str] = set()
        self.created_run_ids: list[str] = []
        self.session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self.tasks: set[asyncio.Task] = set()

    # Requests

    async def request(
        self, name: str, method: str, url: str, *, timeout: float | None = None, **kwargs
    ) -> Response | None:
        """One request, timed; None when no answer came (timeout or transport error)."""
        assert self.session is not None
        seconds = timeout or self.config.request_timeout
        client_timeout = self._timeouts.get(seconds)
        if client_timeout is None:
            client_timeout = self._timeouts[seconds] = aiohttp.ClientTimeout(total=seconds)
        started = time.monotonic()
        try:
            async with self.session.request(method, url, timeout=client_timeout, **kwargs) as r:
                response = Response(r.status, r.headers, await r.read())
        except (TimeoutError, aiohttp.ServerTimeoutError):
            self.stats.record(name, "timeout", time.monotonic() - started)
            return None
        except aiohttp.ClientError as exc:
            self.stats.record(name, type(exc).__name__, time.monotonic() - started)
            return None
        self.stats.record(name, response.status_code, time.monotonic() - started)
        if response.status_code == 503:
            try:
                body = response.json()
                if body.get("code") != "unavailable" or "Retry-After" not in response.headers:
                    self.stats.bad_503_bodies += 1
            except ValueError:
                self.stats.bad_503_bodies += 1
        return response

    async def runner_patch(
        self, name: str, token: str, run_id: str, body: dict, *, key: str
    ) -> Response | None:
        """PATCH until a definite answer (2xx or a 4xx other than 429) or the write's deadline.

        The same Idempotency-Key rides on every attempt, so a PATCH that was applied but whose
        answer was lost is not applied again.
        """
        deadline = time.monotonic() + self.config.write_deadline
        headers = {"Authorization": f"Bearer {token}"}
        if self.config.idempotency_keys:
            headers["Idempotency-Key"] = key
        if self.rng.random() < self.config.minimal_rate:
            headers["Prefer"] = "return=minimal"
        delay = 0.5
        while True:
            short = self.rng.random() < self.config.short_timeout_rate
            response = await self.request(
                name,
                "PATCH",
                f"/api/agent/runs/{run_id}",
                json=body,
                headers=headers,
                timeout=self.config.short_timeout if short else None,
            )
            if response is not None and response.status_code not in RETRYABLE_STATUS:
                return response
            if time.monotonic() > deadline or self.hard_stop:
                return response
            wait = delay
            if response is not None and response.headers.get("Retry-After", "").isdigit():
                wait = max(wait, float(response.headers["Retry-After"]))
            await asyncio.sleep(wait * (0.5 + self.rng.random()))
            delay = min(delay * 2, 5.0)

    # Gateways

    async def scheduler(self, index: int) -> None:
        """Keeps ``runs_per_gateway`` runs queued or running for one gateway (an API client)."""
        gateway = self.config.gateways[index]
        await asyncio.sleep(self.rng.random() * self.config.poll_interval)
        while self.loading:
            if len(self.active_runs[index]) < self.config.runs_per_gateway:
                response = await self.request(
                    "POST /api/elt/runs",
                    "POST",
                    "/api/elt/runs",
                    json={"pipelineId": gateway["pipeline"], "trigger": "schedule"},
                    headers={
                        "Authorization": f"Bearer {self.config.api_key}",
                        "Prefer": "return=minimal",
                    },
                )
                if response is not None and response.status_code == 201:
                    run_id = response.json()["id"]
                    self.active_runs[index].add(run_id)
                    self.created_run_ids.append(run_id)
                    self.journal.write(e="create", run=run_id, gw=index)
            await asyncio.sleep(1.0 + self.rng.random())

    async def gateway(self, index: int) -> None:
        token = self.config.gateways[index]["token"]
        await asyncio.sleep(self.rng.random() * self.config.poll_interval)
        while not self.hard_stop:
            response = await self.request(
                "GET /api/agent/runs",
                "GET",
                "/api/agent/runs",
                headers={"Authorization": f"Bearer {token}"},
            )
            if response is not None and response.status_code == 200:
                for run in response.json()["data"]:
                    if run["status"] == "queued" and run["id"] not in self.claimed:
                        self.claimed.add(run["id"])
                        self.spawn(self.claim_and_run(index, token, run["id"]))
            if not self.loading and not self.active_runs[index]:
                return
            await asyncio.sleep(self.config.poll_interval * (0.9 + 0.2 * self.rng.random()))

    async def claim(self, token: str, run_id: str, replica: int) -> bool:
        key = f"claim-{run_id}-{replica}"
        response = await self.runner_patch(
            "PATCH claim", token, run_id, {"status": "running"}, key=key
        )
        code = response.status_code if response is not None else None
        self.journal.write(e="claim", run=run_id, key=key, code=code)
        return code is not None and 200 <= code < 300

    async def claim_and_run(self, index: int, token: str, run_id: str) -> None:
        # A run whose creation answer was lost still counts towards the gateway's share.
        self.active_runs[index].add(run_id)
        if self.rng.random() < self.config.duplicate_claim_rate:
            # Two replicas of the gateway see the same queued run and race to claim it.
            results = await asyncio.gather(
                self.claim(token, run_id, 1), self.claim(token, run_id, 2)
            )
            won = any(results)
        else:
            won = await self.claim(token, run_id, 1)
        if not won:
            self.active_runs[index].discard(run_id)
            return
        try:
            await self.execute(token, run_id)
        finally:
            self.active_runs[index].discard(run_id)

    async def execute(self, token: str, run_id: str) -> None:
        """Report on a claimed run: logs every 3 s, samples every 5 s, then finish it.

        A run keeps its own schedule after the load phase ends: finishing every run at that
        moment would send one PATCH per gateway at once, a burst no real fleet produces."""
        cfg = self.config
        start = time.monotonic()
        ends = start + self.rng.uniform(*cfg.run_seconds)
        next_log, next_sample = start + cfg.log_interval, start + cfg.sample_interval
        lines = samples = 0
        cancel_seen = False
        while not self.hard_stop:
            now = time.monotonic()
            if now >= ends or cancel_seen:
                break
            await asyncio.sleep(max(0.0, min(next_log, next_sample, ends) - now))
            now = time.monotonic()
            if now >= next_log:
                lines += 1
                next_log += cfg.log_interval
                cancel_seen |= await self.append(token, run_id, "log", lines)
            if now >= next_sample:
                samples += 1
                next_sample += cfg.sample_interval
                cancel_seen |= await self.append(token, run_id, "sample", samples)
        await self.finish(token, run_id, canceled=cancel_seen, rows=samples * 1000)

    async def append(self, token: str, run_id: str, kind: str, n: int) -> bool:
        """One append; True when the answer says the run was asked to cancel."""
        if kind == "log":
            message = f"[lt:{run_id}:L{n}] extracted batch {n}"
            if n % 7 == 0:
                message += " " + self.rng.choice(XSS_PAYLOADS + SECRETS)
            body: dict[str, Any] = {
                "appendLog": {"level": "info", "message": message, "nodeId": "n_source"}
            }
            name = "PATCH appendLog"
        else:
            body = {
                "appendTelemetrySample": {"rowsLoaded": n * 1000, "progress": 50, "ltSeq": n},
                "telemetrySummary": {"rowsLoaded": n * 1000, "currentPhase": "extract"},
            }
            name = "PATCH appendTelemetrySample"
        self.journal.write(e="send", kind=kind, run=run_id, n=n)
        response = await self.runner_patch(name, token, run_id, body, key=f"{kind}-{run_id}-{n}")
        if response is not None and 200 <= response.status_code < 300:
            self.journal.write(e="ack", kind=kind, run=run_id, n=n)
            return response.json().get("status") == "cancel_requested"
        return False

    async def finish(self, token: str, run_id: str, *, canceled: bool, rows: int) -> None:
        if canceled:
            status, body = "canceled", {"status": "canceled"}
        elif self.rng.random() < 0.15:
            payload = self.rng.choice(XSS_PAYLOADS + SECRETS)
            status = "failed"
            body = {"status": "failed", "errorSummary": f"load step failed: {payload}"}
        else:
            status = "succeeded"
            summary = {"rowsLoaded": rows, "progress": 100}
            body = {"status": "succeeded", "telemetrySummary": summary}
        self.journal.write(e="final_send", run=run_id, status=status)
        response = await self.runner_patch(
            "PATCH finish", token, run_id, body, key=f"final-{run_id}"
        )
        code = response.status_code if response is not None else None
        if code is not None and 200 <= code < 300:
            self.journal.write(e="final", run=run_id, status=response.json()["status"])
        else:
            self.journal.write(e="final_failed", run=run_id, code=code)

    # Readers

    async def analyst(self, cookie: str) -> None:
        headers = {"Cookie": cookie}
        await asyncio.sleep(self.rng.random() * 3)
        statuses = ["", "running", "failed", "succeeded", "queued,running"]
        while self.loading:
            params = {"window": self.rng.choice(["24h", "7d", "30d"])}
            if status := self.rng.choice(statuses):
                params["status"] = status
            response = await self.request(
                "GET /runs/", "GET", "/runs/", params=params, headers=headers
            )
            for _ in range(self.rng.randint(0, 2)):
                if response is None or response.status_code != 200:
                    break
                match = re.search(r'rel="next" href="([^"]+)"', response.text)
                if not match:
                    break
                url = "/runs/" + match.group(1).replace("&amp;", "&")
                await asyncio.sleep(self.rng.uniform(1, 3))
                response = await self.request(
                    "GET /runs/ (older page)",
                    "GET",
                    url,
                    headers={**headers, "HX-Request": "true", "HX-Target": "run-table"},
                )
            ids = re.findall(r'href="/runs/(run_[A-Za-z0-9]+)/"', response.text if response else "")
            if ids:
                await asyncio.sleep(self.rng.uniform(1, 3))
                await self.request(
                    "GET /runs/{id}/", "GET", f"/runs/{self.rng.choice(ids)}/", headers=headers
                )
            await asyncio.sleep(self.rng.uniform(*self.config.analyst_think_seconds))

    async def api_client(self) -> None:
        headers = {"Authorization": f"Bearer {self.config.api_key}"}
        await asyncio.sleep(self.rng.random() * 2)
        while self.loading:
            params: dict[str, Any] = {"limit": 50}
            if status := self.rng.choice(["", "running", "failed"]):
                params["status"] = status
            if self.config.read_api:
                response = await self.request(
                    "GET /api/runs", "GET", "/api/runs", params=params, headers=headers
                )
                if response is not None and response.status_code == 200:
                    cursor = response.json().get("meta", {}).get("cursor")
                    if cursor and self.rng.random() < 0.5:
                        await self.request(
                            "GET /api/runs (next page)",
                            "GET",
                            "/api/runs",
                            params={**params, "cursor": cursor},
                            headers=headers,
                        )
                    running = [r["id"] for r in response.json()["data"] if r["status"] == "running"]
                    if running and self.rng.random() < self.config.cancel_rate:
                        await self.request(
                            "DELETE /api/runs/{id}",
                            "DELETE",
                            f"/api/runs/{self.rng.choice(running)}",
                            headers=headers,
                        )
            elif self.created_run_ids:
                await self.request(
                    "GET /api/elt/runs/{id}",
                    "GET",
                    f"/api/elt/runs/{self.rng.choice(self.created_run_ids)}",
                    headers={**headers, "Prefer": "return=minimal"},
                )
            await asyncio.sleep(0.5 + self.rng.random())

    # Orchestration

    def spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def run(self, during=None) -> None:
        """Load for ``duration`` seconds, then let every claimed run finish (bounded)."""
        cfg = self.config
        # One session for the whole fleet; the connector allows as many connections as there can
        # be requests in flight, and keeps them alive when the server does.
        connector = aiohttp.TCPConnector(limit=400)
        async with aiohttp.ClientSession(
            base_url=cfg.base_url,
            connector=connector,
            # Each simulated client sends its own credentials; nothing is shared between them.
            cookie_jar=aiohttp.DummyCookieJar(),
            json_serialize=dumps,
        ) as session:
            self.session = session
            for index in range(len(cfg.gateways)):
                self.spawn(self.scheduler(index))
                self.spawn(self.gateway(index))
            if cfg.pages:
                for cookie in cfg.analyst_cookies:
                    self.spawn(self.analyst(cookie))
            for _ in range(cfg.api_clients):
                self.spawn(self.api_client())
            side = asyncio.create_task(during(self)) if during else None
            await asyncio.sleep(cfg.duration)
            self.loading = False
            self.stats.load_ended = time.monotonic() - self.stats.started
            drain_deadline = time.monotonic() + cfg.drain_seconds
            while self.tasks and time.monotonic() < drain_deadline:
                await asyncio.sleep(0.5)
            self.hard_stop = True
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            if side is not None:
                # The fault is part of the experiment: if it could not be injected, say so.
                await side
