"""Demo data: pipelines, gateways, users and runs across every status, with logs and telemetry.

``seed_demo`` alone makes a small, lively data set (a few hundred runs over 30 days, some of them
running). ``--runs N`` adds N runs of history; on PostgreSQL they are written with COPY, so a
million takes a few minutes at most.
"""

import json
import random
import secrets
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from common.actors import Actor
from common.ids import new_public_id
from common.roles import Role
from gateways.models import Gateway
from gateways.services import gateway_token_issue
from pipelines.models import Pipeline
from runs.models import (
    LogLine,
    PipelineDay,
    Run,
    RunNode,
    RunStatus,
    TelemetrySample,
    TriggerType,
)

PIPELINES = [
    ("crm_to_warehouse", "Salesforce accounts, contacts and opportunities into Snowflake", "sales"),
    ("billing_events", "Stripe invoices and charges into BigQuery, hourly", "finance"),
    ("product_analytics", "Segment events from S3 into the lakehouse", "product"),
    ("hr_sync", "Workday workers into Postgres for internal tools", "people"),
    ("support_tickets", "Zendesk tickets and satisfaction into Snowflake", "support"),
    ("inventory_snapshot", "ERP stock levels from SQL Server into Redshift", "finance"),
]
GATEWAYS = ["edge-eu-1", "edge-us-1", "onprem-dc2"]
PHASES = ["extract", "transform", "load"]
RESOURCES = ["accounts", "contacts", "opportunities", "invoices", "events", "tickets", "items"]
ERRORS = [
    "Snowflake: warehouse LOAD_WH is suspended (error 000606)",
    "connection to postgres://etl:[REDACTED]@db.internal:5432/crm failed: timeout after 30s",
    "BigQuery quota exceeded: too many table update operations for this table",
    "source schema changed: column 'amount_cents' not found in invoices",
    "HTTP 429 from Zendesk API after 5 retries",
]
STATUS_WEIGHTS = [
    (RunStatus.SUCCEEDED, 84),
    (RunStatus.FAILED, 12),
    (RunStatus.CANCELED, 4),
]
# Re-runs are not drawn at random: each one is made from a finished run it names (rerunOf).
TRIGGER_WEIGHTS = [
    (TriggerType.SCHEDULE, 70),
    (TriggerType.MANUAL, 15),
    (TriggerType.API, 12),
    (TriggerType.BACKFILL, 3),
]
# Of the lively runs, about this share of failed ones is followed by a re-run.
RERUN_SHARE = 0.5


def weighted(rng: random.Random, pairs):
    return rng.choices([value for value, _ in pairs], weights=[w for _, w in pairs])[0]


class Command(BaseCommand):
    help = "Create demo data. --runs N adds N runs of history (COPY on PostgreSQL)."

    def add_arguments(self, parser):
        parser.add_argument("--runs", type=int, default=0, help="Runs of history to add.")
        parser.add_argument(
            "--days", type=float, default=None, help="Spread history over this many days."
        )
        parser.add_argument("--admin-password", default=None)
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument(
            "--no-live", action="store_true", help="Do not add the small set of lively runs."
        )

    def handle(self, *args, runs: int, days: float | None, admin_password, seed, no_live, **opts):
        rng = random.Random(seed)
        password = self.ensure_users(admin_password)
        gateways, tokens = self.ensure_gateways()
        pipelines = self.ensure_pipelines(gateways)
        if runs:
            span = timedelta(days=days if days else max(30.0, runs / 1500))
            self.stdout.write(f"Adding {runs} runs over {span.days} days…")
            self.bulk_history(rng, runs, span, pipelines, gateways)
            # Runs written straight into past days: those days' sums are summed again.
            PipelineDay.objects.all().delete()
        if not no_live:
            self.lively_runs(rng, pipelines, gateways)
        self.mark_gateways_seen(gateways)
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        for name, token in tokens.items():
            self.stdout.write(f"Gateway {name} token: {token}")
        if password:
            self.stdout.write(f"Analyst login: analyst / {password}  (read-only)")
            self.stdout.write(f"Admin login: admin / {password}")

    def ensure_users(self, admin_password: str | None) -> str | None:
        user_model = get_user_model()
        if user_model.objects.filter(username="admin").exists():
            return None
        password = admin_password or secrets.token_urlsafe(9)
        user_model.objects.create_superuser("admin", "admin@example.com", password)
        analyst = user_model.objects.create_user("analyst", "analyst@example.com", password)
        analyst.groups.add(Group.objects.get(name=Role.VIEWER))
        return password

    def ensure_gateways(self) -> tuple[list[Gateway], dict[str, str]]:
        gateways, tokens = [], {}
        for name in GATEWAYS:
            gateway, created = Gateway.objects.get_or_create(name=name)
            if created:
                _, tokens[name] = gateway_token_issue(
                    actor=Actor.system(), gateway=gateway, name="demo"
                )
            gateways.append(gateway)
        return gateways, tokens

    def mark_gateways_seen(self, gateways: list[Gateway]) -> None:
        """A gateway that reported runs has connected: it was last seen at its newest report
        (now, for the gateways of running runs), never "never connected"."""
        newest = dict(
            Run.objects.filter(gateway__in=gateways)
            .order_by()
            .values("gateway")
            .annotate(seen=Max("last_report_at"))
            .values_list("gateway", "seen")
        )
        for gateway in gateways:
            seen = newest.get(gateway.pk)
            if seen and (gateway.last_seen_at is None or gateway.last_seen_at < seen):
                Gateway.objects.filter(pk=gateway.pk).update(last_seen_at=seen)

    def ensure_pipelines(self, gateways: list[Gateway]) -> list[Pipeline]:
        pipelines = []
        for index, (name, description, team) in enumerate(PIPELINES):
            pipeline, _ = Pipeline.objects.get_or_create(
                name=name,
                defaults={
                    "description": description,
                    "default_gateway": gateways[index % len(gateways)],
                    "labels": {"team": team, "env": "prod"},
                },
            )
            pipelines.append(pipeline)
        return pipelines

    def finished_run_fields(self, rng: random.Random, created: datetime) -> dict:
        status = weighted(rng, STATUS_WEIGHTS)
        started = created + timedelta(seconds=rng.randint(1, 90))
        duration = int(rng.lognormvariate(5.5, 0.9)) + 5
        finished = started + timedelta(seconds=duration)
        rows = int(rng.lognormvariate(11, 1.6))
        done = 100 if status == RunStatus.SUCCEEDED else rng.randint(5, 95)
        rows = rows if status == RunStatus.SUCCEEDED else rows * done // 100
        return {
            "status": status,
            "started_at": started,
            "finished_at": finished,
            "rows_loaded": rows,
            "bytes_loaded": rows * rng.randint(180, 900),
            "progress": float(done),
            "error_summary": rng.choice(ERRORS) if status == RunStatus.FAILED else "",
            "phase": "load" if status == RunStatus.SUCCEEDED else rng.choice(PHASES),
            "resource": rng.choice(RESOURCES),
        }

    def bulk_history(self, rng, count: int, span: timedelta, pipelines, gateways) -> None:
        now = timezone.now() - timedelta(hours=1)
        start = now - span
        step = span / count
        if connection.vendor == "postgresql":
            self.copy_history(rng, count, start, step, pipelines, gateways)
        else:
            self.orm_history(rng, count, start, step, pipelines, gateways)

    def history_rows(self, rng, count, start, step, pipelines, gateways):
        for index in range(count):
            created = start + step * index
            pipeline = pipelines[rng.randrange(len(pipelines))]
            gateway_id = pipeline.default_gateway_id if rng.random() < 0.9 else None
            fields = self.finished_run_fields(rng, created)
            summary = {
                "rowsLoaded": fields["rows_loaded"],
                "bytesLoaded": fields["bytes_loaded"],
                "progress": fields["progress"],
                "currentPhase": fields["phase"],
                "currentResource": fields["resource"],
            }
            yield index, created, pipeline, gateway_id, fields, summary

    def copy_history(self, rng, count, start, step, pipelines, gateways) -> None:
        columns = (
            "public_id, pipeline_id, gateway_id, status, trigger_type, trigger, created_at, "
            "updated_at, started_at, finished_at, last_report_at, cancel_requested_at, "
            "error_summary, telemetry_summary, rows_loaded, bytes_loaded, progress, log_seq, "
            "sample_seq, finished_by_system, labels"
        )
        with transaction.atomic(), connection.cursor() as cursor:
            raw = cursor.connection
            with raw.cursor().copy(f"COPY runs_run ({columns}) FROM STDIN") as copy:
                for _, created, pipeline, gateway_id, f, summary in self.history_rows(
                    rng, count, start, step, pipelines, gateways
                ):
                    copy.write_row(
                        (
                            new_public_id("run", at_ms=int(created.timestamp() * 1000)),
                            pipeline.pk,
                            gateway_id,
                            f["status"],
                            weighted(rng, TRIGGER_WEIGHTS),
                            "{}",
                            created,
                            f["finished_at"],
                            f["started_at"],
                            f["finished_at"],
                            f["finished_at"],
                            None,
                            f["error_summary"],
                            json.dumps(summary),
                            f["rows_loaded"],
                            f["bytes_loaded"],
                            f["progress"],
                            0,
                            0,
                            False,
                            json.dumps(pipeline.labels),
                        )
                    )
            # Give the newest runs a telemetry series so their sparklines have something to draw.
            cursor.execute(
                "SELECT id, started_at, finished_at, rows_loaded, bytes_loaded, progress "
                "FROM runs_run "
                "WHERE sample_seq = 0 AND started_at IS NOT NULL AND finished_at IS NOT NULL "
                "ORDER BY created_at DESC, id DESC LIMIT 2000"
            )
            recent = cursor.fetchall()
            with raw.cursor().copy(
                'COPY runs_telemetrysample (run_id, seq, at, "values") FROM STDIN'
            ) as copy:
                for run_pk, started, finished, rows, size, progress in recent:
                    series = self.series(rng, started, finished, rows, size, progress=progress)
                    for seq, at, values in series:
                        copy.write_row((run_pk, seq, at, json.dumps(values)))
            cursor.execute(
                "UPDATE runs_run SET sample_seq = 12 WHERE id = ANY(%s)",
                [[row[0] for row in recent]],
            )
            cursor.execute("ANALYZE runs_run")

    def orm_history(self, rng, count, start, step, pipelines, gateways) -> None:
        batch = []
        for _, created, pipeline, gateway_id, f, summary in self.history_rows(
            rng, count, start, step, pipelines, gateways
        ):
            batch.append(
                Run(
                    public_id=new_public_id("run", at_ms=int(created.timestamp() * 1000)),
                    pipeline=pipeline,
                    gateway_id=gateway_id,
                    labels=pipeline.labels,
                    status=f["status"],
                    trigger_type=weighted(rng, TRIGGER_WEIGHTS),
                    created_at=created,
                    updated_at=f["finished_at"],
                    started_at=f["started_at"],
                    finished_at=f["finished_at"],
                    last_report_at=f["finished_at"],
                    error_summary=f["error_summary"],
                    telemetry_summary=summary,
                    rows_loaded=f["rows_loaded"],
                    bytes_loaded=f["bytes_loaded"],
                    progress=f["progress"],
                )
            )
            if len(batch) >= 5000:
                Run.objects.bulk_create(batch)
                batch = []
        Run.objects.bulk_create(batch)

    def series(self, rng, started, finished, rows, size, points: int = 12, *, progress=100.0):
        """Samples climbing to the run's final rows, bytes and progress (a failed run stops
        short of 100%)."""
        total = max(1.0, (finished - started).total_seconds())
        for seq in range(1, points + 1):
            fraction = seq / points
            shaped = fraction ** rng.uniform(0.7, 1.4)
            yield (
                seq,
                started + timedelta(seconds=total * fraction),
                {
                    "rowsLoaded": int((rows or 0) * shaped),
                    "bytesLoaded": int((size or 0) * shaped),
                    "progress": round((progress or 0) * shaped, 1),
                },
            )

    @transaction.atomic
    def lively_runs(self, rng, pipelines, gateways) -> None:
        """Recent runs with logs, samples and nodes, a few of them running or queued; some
        failed ones are followed by a re-run that names them."""
        now = timezone.now()
        failed: dict[int, Run] = {}
        for index in range(60):
            pipeline = pipelines[index % len(pipelines)]
            created = now - timedelta(minutes=30 * (60 - index) + rng.randint(0, 20))
            if index >= 56:
                status = RunStatus.RUNNING
            elif index >= 54:
                status = RunStatus.QUEUED
            else:
                status = None
            original = failed.pop(pipeline.pk, None)
            if original is not None and original.finished_at >= created:
                original = None
            run = self.lively_run(rng, pipeline, created, status, now, rerun_of=original)
            if run.status == RunStatus.FAILED and rng.random() < RERUN_SHARE:
                failed[pipeline.pk] = run

    def lively_run(self, rng, pipeline, created, status, now, *, rerun_of=None) -> Run:
        f = self.finished_run_fields(rng, created)
        run = Run(
            pipeline=pipeline,
            gateway=pipeline.default_gateway,
            trigger_type=TriggerType.RERUN if rerun_of else weighted(rng, TRIGGER_WEIGHTS),
            trigger={"rerunOf": rerun_of.public_id} if rerun_of else {},
            rerun_of=rerun_of,
            labels=rerun_of.labels if rerun_of else pipeline.labels,
            created_at=created,
            public_id=new_public_id("run", at_ms=int(created.timestamp() * 1000)),
        )
        if status == RunStatus.QUEUED:
            run.status = status
            run.save()
            return run
        if status == RunStatus.RUNNING:
            run.status = status
            run.started_at = now - timedelta(minutes=rng.randint(2, 25))
            f["finished_at"] = now
            f["progress"] = float(rng.randint(10, 80))
            f["rows_loaded"] = f["rows_loaded"] * int(f["progress"]) // 100
            f["bytes_loaded"] = f["bytes_loaded"] * int(f["progress"]) // 100
            run.last_report_at = now
        else:
            run.status = f["status"]
            run.started_at = f["started_at"]
            run.finished_at = f["finished_at"]
            run.last_report_at = f["finished_at"]
            run.error_summary = f["error_summary"]
        run.rows_loaded, run.bytes_loaded, run.progress = (
            f["rows_loaded"],
            f["bytes_loaded"],
            f["progress"],
        )
        run.telemetry_summary = {
            "rowsLoaded": f["rows_loaded"],
            "bytesLoaded": f["bytes_loaded"],
            "progress": f["progress"],
            "currentPhase": f["phase"],
            "currentResource": f["resource"],
        }
        run.save()
        end = f["finished_at"]
        samples = list(
            self.series(
                rng,
                run.started_at,
                end,
                f["rows_loaded"],
                f["bytes_loaded"],
                40,
                progress=f["progress"],
            )
        )
        TelemetrySample.objects.bulk_create(
            TelemetrySample(run=run, seq=seq, at=at, values=values) for seq, at, values in samples
        )
        lines = []
        span = (end - run.started_at).total_seconds()
        messages = [
            ("info", "n_source", "Connecting to source"),
            ("info", "n_source", "Started JDBC read of {resource}"),
            ("info", "n_source", "Read batch of 50000 rows"),
            ("warn", "n_source", "Slow query: 12.4s for batch 7"),
            ("info", "n_transform", "Applied 14 column mappings"),
            ("info", "n_sink", "Staged 3 files to @LOAD_STAGE"),
            ("info", "n_sink", "COPY INTO completed: {rows} rows"),
        ]
        for seq in range(1, 31):
            level, node_id, text = messages[seq % len(messages)]
            lines.append(
                LogLine(
                    run=run,
                    seq=seq,
                    at=run.started_at + timedelta(seconds=span * seq / 31),
                    level=level,
                    node_id=node_id,
                    message=text.format(resource=f["resource"], rows=f["rows_loaded"]),
                )
            )
        if run.status == RunStatus.FAILED:
            lines.append(
                LogLine(
                    run=run,
                    seq=31,
                    at=end,
                    level="error",
                    node_id="n_sink",
                    message=run.error_summary,
                )
            )
        LogLine.objects.bulk_create(lines)
        run.log_seq, run.sample_seq = len(lines), len(samples)
        run.save(update_fields=["log_seq", "sample_seq"])
        node_status = "running" if run.status == RunStatus.RUNNING else run.status
        RunNode.objects.bulk_create(
            [
                RunNode(
                    run=run,
                    node_id="n_source",
                    type="source.postgres",
                    status="succeeded",
                    started_at=run.started_at,
                    finished_at=run.started_at + timedelta(seconds=span / 3),
                    metrics={"rowsOut": f["rows_loaded"]},
                ),
                RunNode(
                    run=run,
                    node_id="n_sink",
                    type="destination.snowflake",
                    status=node_status,
                    started_at=run.started_at + timedelta(seconds=span / 3),
                    finished_at=None if run.status == RunStatus.RUNNING else end,
                    metrics={"rowsIn": f["rows_loaded"]},
                ),
            ]
        )
        return run
