"""Check the database against the journal of what runners were told was accepted.

Rules (each breach is a problem, and any problem fails the run):

- every run whose creation got a 2xx exists;
- no run was claimed twice: at most one claim per run got a 2xx (two replicas racing for a run
  use different keys; a retried claim reuses its key and is one claim);
- every acknowledged ``appendLog``/``appendTelemetrySample`` is stored exactly once (up to the
  caps), and nothing is stored that no runner sent;
- every run whose final PATCH got a 2xx has that final status, a ``finished_at``, and exactly one
  webhook event of the matching type; every final run of the fleet has exactly one event;
- every such event reached the receiver at least once, under the event's own ``webhook-id``.
"""

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from django.conf import settings

from runs.models import FINAL_STATUSES, LogLine, Run, TelemetrySample

MARKER = re.compile(r"\[lt:(run_[a-z0-9]+):L(\d+)\]")


@dataclass
class Outcome:
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < 200:
            self.problems.append(text)
        self.figures["problems"] = self.figures.get("problems", 0) + 1


def read_journal(path: Path) -> list[dict[str, Any]]:
    with path.open() as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _check_appends(outcome, kind, sent, acked, stored_by_run, seq_by_run, cap) -> None:
    lost = duplicated = phantom = 0
    for run_id in set(sent) | set(stored_by_run):
        stored = stored_by_run.get(run_id, Counter())
        sent_ns = sent.get(run_id, set())
        acked_ns = sorted(acked.get(run_id, set()))
        # A run that appended more than the cap keeps only the newest ``cap``; writes that were
        # sent but never acknowledged may hold some of those places.
        if seq_by_run.get(run_id, 0) > cap:
            unacked = len(sent_ns) - len(acked_ns)
            acked_ns = acked_ns[-max(cap - unacked, 0) :] if cap > unacked else []
        for n in acked_ns:
            if stored[n] == 0:
                lost += 1
                outcome.problem(f"{kind} {run_id} #{n} was acknowledged but is not stored")
        for n, count in stored.items():
            if count > 1:
                duplicated += count - 1
                outcome.problem(f"{kind} {run_id} #{n} is stored {count} times")
            if n not in sent_ns:
                phantom += 1
                outcome.problem(f"{kind} {run_id} #{n} is stored but was never sent")
    outcome.figures[f"{kind}_acked"] = sum(len(v) for v in acked.values())
    outcome.figures[f"{kind}_sent"] = sum(len(v) for v in sent.values())
    outcome.figures[f"{kind}_stored"] = sum(sum(c.values()) for c in stored_by_run.values())
    outcome.figures[f"{kind}_lost"] = lost
    outcome.figures[f"{kind}_duplicated"] = duplicated
    outcome.figures[f"{kind}_phantom"] = phantom


def verify(
    journal_path: Path, deliveries: list | None = None, *, pending_retry_ok: bool = False
) -> Outcome:
    outcome = Outcome()
    entries = read_journal(journal_path)
    created: set[str] = set()
    claims: dict[str, set[str]] = defaultdict(set)
    sent: dict[str, dict[str, set[int]]] = {"log": defaultdict(set), "sample": defaultdict(set)}
    acked: dict[str, dict[str, set[int]]] = {"log": defaultdict(set), "sample": defaultdict(set)}
    finals: dict[str, str] = {}
    for entry in entries:
        kind = entry["e"]
        if kind == "create":
            created.add(entry["run"])
        elif kind == "claim" and entry["code"] is not None and 200 <= entry["code"] < 300:
            claims[entry["run"]].add(entry["key"])
        elif kind == "send":
            sent[entry["kind"]][entry["run"]].add(entry["n"])
        elif kind == "ack":
            acked[entry["kind"]][entry["run"]].add(entry["n"])
        elif kind == "final":
            finals[entry["run"]] = entry["status"]
    touched = created | set(claims) | set(finals)
    runs = {run.public_id: run for run in Run.objects.filter(public_id__in=touched)}
    fleet_runs = {
        run.public_id: run for run in Run.objects.filter(pipeline__name__startswith="lt_pipeline_")
    }
    outcome.figures.update(
        runs_created=len(created),
        runs_claimed=len(claims),
        runs_finished=len(finals),
        runs_in_db=len(fleet_runs),
    )

    for run_id in created - set(runs):
        outcome.problem(f"run {run_id} was created (2xx) but is not in the database")
    twice = [run_id for run_id, keys in claims.items() if len(keys) > 1]
    outcome.figures["claimed_twice"] = len(twice)
    for run_id in twice:
        outcome.problem(f"run {run_id} was claimed {len(claims[run_id])} times")
    for run_id in claims:
        run = runs.get(run_id)
        if run is not None and (run.status == "queued" or run.started_at is None):
            outcome.problem(f"run {run_id} was claimed but is {run.status} with no start")

    fleet_ids = list(fleet_runs.values())
    logs: dict[str, Counter] = defaultdict(Counter)
    for message, public_id in LogLine.objects.filter(run__in=fleet_ids).values_list(
        "message", "run__public_id"
    ):
        match = MARKER.search(message)
        if match and match.group(1) == public_id:
            logs[public_id][int(match.group(2))] += 1
    samples: dict[str, Counter] = defaultdict(Counter)
    for values, public_id in TelemetrySample.objects.filter(run__in=fleet_ids).values_list(
        "values", "run__public_id"
    ):
        if isinstance(values, dict) and "ltSeq" in values:
            samples[public_id][int(values["ltSeq"])] += 1
    _check_appends(
        outcome,
        "log",
        sent["log"],
        acked["log"],
        logs,
        {r.public_id: r.log_seq for r in fleet_ids},
        settings.RUN_LOG_CAP,
    )
    _check_appends(
        outcome,
        "sample",
        sent["sample"],
        acked["sample"],
        samples,
        {r.public_id: r.sample_seq for r in fleet_ids},
        settings.RUN_SAMPLE_CAP,
    )

    for run_id, status in finals.items():
        run = runs.get(run_id)
        if run is None or run.status != status or run.finished_at is None:
            outcome.problem(
                f"run {run_id} was finished as {status} (2xx) but the database has "
                f"{getattr(run, 'status', None)}"
            )
    unfinished = [r for r in claims if r not in finals]
    outcome.figures["claimed_not_finished"] = len(unfinished)
    _check_events(outcome, fleet_runs, deliveries, pending_retry_ok=pending_retry_ok)
    _check_periodic_jobs(outcome, journal_path.parent)
    return outcome


def _check_periodic_jobs(outcome: Outcome, out: Path) -> None:
    """No periodic job ran twice at once, whatever the number of workers: the spans in which
    each run held its job's lock (from the workers' logs) never overlap, and every job that
    finished with a result (a skipped one answers None) logged its span."""
    from django_tasks_db.models import DBTaskResult

    from common.locks import SPAN_PATTERN

    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for path in sorted(out.glob("worker*.log")):
        for match in SPAN_PATTERN.finditer(path.read_text(errors="replace")):
            spans[match[1]].append((float(match[2]), float(match[3])))
    overlaps = ran = 0
    for path in settings.PERIODIC_TASKS:
        name = path.rsplit(".", 1)[1]
        held = sorted(spans[name])
        finished = DBTaskResult.objects.filter(
            task_path=path, finished_at__isnull=False, return_value__isnull=False
        ).count()
        if len(held) < finished:
            outcome.problem(f"{path} finished {finished} times but logged {len(held)} spans")
        ran += len(held)
        for (_, previous_end), (start, _) in pairwise(held):
            if start < previous_end:
                overlaps += 1
                outcome.problem(f"{path} ran twice at once ({start:.6f} < {previous_end:.6f})")
    outcome.figures["periodic_job_runs"] = ran
    outcome.figures["periodic_jobs_overlapping"] = overlaps


def _check_events(
    outcome: Outcome, fleet_runs: dict[str, Run], deliveries, *, pending_retry_ok: bool
) -> None:
    from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEvent

    final = {run.pk: run for run in fleet_runs.values() if run.status in FINAL_STATUSES}
    events: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for run_pk, event_type, public_id in WebhookEvent.objects.filter(
        run_id__in=list(final)
    ).values_list("run_id", "type", "public_id"):
        events[run_pk].append((event_type, public_id))
    missing = wrong = 0
    for run_pk, run in final.items():
        mine = events.get(run_pk, [])
        if len(mine) != 1 or mine[0][0] != f"run.{run.status}":
            missing += len(mine) == 0
            wrong += len(mine) != 0
            outcome.problem(f"run {run.public_id} ({run.status}) has webhook events {mine}")
    outcome.figures["webhook_events"] = sum(len(v) for v in events.values())
    outcome.figures["final_runs_without_event"] = missing
    outcome.figures["final_runs_with_wrong_events"] = wrong
    if deliveries is None:
        return
    received = Counter(d.webhook_id for d in deliveries)
    expected = {public_id for items in events.values() for _, public_id in items}
    undelivered = expected - set(received)
    if pending_retry_ok and undelivered:
        # After a receiver outage, retries follow the schedule (minutes apart): an event still
        # waiting for its next attempt is late, not lost.
        waiting = set(
            WebhookDelivery.objects.filter(
                event__public_id__in=undelivered,
                status=DeliveryStatus.PENDING,
                next_attempt_at__isnull=False,
            ).values_list("event__public_id", flat=True)
        )
        outcome.figures["webhook_events_pending_retry"] = len(waiting)
        undelivered -= waiting
    outcome.figures["webhook_deliveries_received"] = sum(received[i] for i in expected)
    outcome.figures["webhook_events_undelivered"] = len(undelivered)
    outcome.figures["webhook_events_redelivered"] = sum(1 for i in expected if received[i] > 1)
    outcome.figures["webhook_bad_signatures"] = sum(
        1 for d in deliveries if d.signature_ok is False
    )
    for public_id in sorted(undelivered)[:20]:
        outcome.problem(f"webhook event {public_id} never reached the receiver")
    if outcome.figures["webhook_bad_signatures"]:
        outcome.problem("some webhook deliveries failed signature verification")
