from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from common.ids import bulk_job_id, run_id, saved_view_id


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    CANCEL_REQUESTED = "cancel_requested"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


FINAL_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELED})
ACTIVE_STATUSES = frozenset({RunStatus.RUNNING, RunStatus.CANCEL_REQUESTED})

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELED, RunStatus.FAILED}),
    RunStatus.RUNNING: frozenset(
        {
            RunStatus.SUCCEEDED,
            RunStatus.FAILED,
            RunStatus.CANCELED,
            RunStatus.CANCEL_REQUESTED,
        }
    ),
    RunStatus.CANCEL_REQUESTED: frozenset(
        {RunStatus.CANCELED, RunStatus.FAILED, RunStatus.SUCCEEDED}
    ),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELED: frozenset(),
}


# Other spellings accepted as input, wherever a run status is read (bodies, filters).
STATUS_ALIASES = {"cancelled": RunStatus.CANCELED}

# Node statuses that mean the node is done; the others are closed when their run becomes final.
NODE_FINAL_STATUSES = frozenset({"succeeded", "failed", "canceled", "skipped"})


class TriggerType(models.TextChoices):
    MANUAL = "manual"
    SCHEDULE = "schedule"
    API = "api"
    WEBHOOK = "webhook"
    BACKFILL = "backfill"
    RERUN = "rerun"


class LogLevel(models.TextChoices):
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


class Run(models.Model):
    """One execution of a pipeline, and the rollup of everything its runner reported.

    Log lines and telemetry samples live in their own tables; ``log_seq``/``sample_seq`` count
    every line and sample ever appended, so the newest N are those with ``seq > *_seq - N``
    whatever the physical trimming has reached.
    """

    # Fields fixed when the run is made; every other column is written back by the services
    # after a change (``runs.services``), so a new column needs no list kept by hand.
    IMMUTABLE_FIELDS = frozenset(
        {
            "id",
            "public_id",
            "pipeline",
            "gateway",
            "trigger_type",
            "trigger",
            "created_at",
            "created_by",
            "rerun_of",
        }
    )

    public_id = models.CharField(max_length=40, unique=True, default=run_id, editable=False)
    pipeline = models.ForeignKey(
        "pipelines.Pipeline", on_delete=models.PROTECT, related_name="runs", db_index=False
    )
    gateway = models.ForeignKey(
        "gateways.Gateway",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="runs",
        db_index=False,
    )
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    trigger_type = models.CharField(
        max_length=20, choices=TriggerType.choices, default=TriggerType.API
    )
    trigger = models.JSONField(default=dict, blank=True, help_text="Trigger details.")
    # Key/value pairs (``common.labels``): the pipeline's defaults, the caller's, the runner's.
    labels = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_report_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    error_summary = models.TextField(blank=True)
    finished_by_system = models.BooleanField(
        default=False,
        help_text="Failed or canceled by the system (lost runner, unconfirmed cancel): the "
        "runner's late reports are refused.",
    )
    telemetry_summary = models.JSONField(default=dict, blank=True)
    # Columns copied from the summary so lists and dashboards aggregate without parsing JSON.
    rows_loaded = models.BigIntegerField(null=True, blank=True)
    bytes_loaded = models.BigIntegerField(null=True, blank=True)
    progress = models.FloatField(null=True, blank=True)
    log_seq = models.BigIntegerField(default=0, editable=False)
    sample_seq = models.BigIntegerField(default=0, editable=False)
    # Set when retention removed the run's log lines and samples: the retention in days that
    # applied, so that pages and the API say "log removed after N days", not "no log lines".
    log_pruned_after_days = models.PositiveIntegerField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["created_at", "id"], name="run_created_idx"),
            models.Index(fields=["status", "created_at", "id"], name="run_status_created_idx"),
            models.Index(fields=["pipeline", "created_at", "id"], name="run_pipeline_created_idx"),
            models.Index(fields=["gateway", "created_at", "id"], name="run_gateway_created_idx"),
            models.Index(
                fields=["trigger_type", "created_at", "id"], name="run_trigger_created_idx"
            ),
            models.Index(
                fields=["gateway", "status", "created_at"],
                name="run_active_idx",
                condition=Q(status__in=["queued", "running", "cancel_requested"]),
            ),
            # Baselines: a pipeline's newest succeeded runs (runs.stats).
            models.Index(
                fields=["pipeline", "created_at", "id"],
                name="run_baseline_idx",
                condition=Q(status="succeeded"),
            ),
            # Retention's candidates: finished runs whose log is still kept, oldest first.
            models.Index(
                fields=["finished_at"],
                name="run_log_kept_idx",
                condition=Q(log_pruned_after_days__isnull=True, finished_at__isnull=False),
            ),
        ]
        permissions = [
            ("cancel_run", "Can cancel runs"),
            ("trigger_run", "Can trigger and re-run runs"),
            ("report_run", "Can report on runs as a runner (status, logs, telemetry, nodes)"),
        ]

    def __str__(self) -> str:
        return self.public_id

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def can_cancel(self) -> bool:
        return self.status in {RunStatus.QUEUED, RunStatus.RUNNING}

    @property
    def duration_seconds(self) -> int | None:
        return duration_seconds_of(
            status=self.status, started_at=self.started_at, finished_at=self.finished_at
        )


def duration_seconds_of(
    *, status: str, started_at: datetime | None, finished_at: datetime | None, now=None
) -> int | None:
    """Whole seconds from start to finish, or to ``now`` (default: the clock) while the run is
    not final; None before it started, or for a final run with no finish time."""
    if started_at is None:
        return None
    end = finished_at or (None if status in FINAL_STATUSES else now or timezone.now())
    if end is None:
        return None
    return max(0, int((end - started_at).total_seconds()))


class LogLine(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="log_lines", db_index=False)
    seq = models.BigIntegerField()
    at = models.DateTimeField()
    level = models.CharField(max_length=5, choices=LogLevel.choices)
    message = models.TextField()
    node_id = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="logline_run_seq")]

    def __str__(self) -> str:
        return f"{self.run_id}#{self.seq}"


class TelemetrySample(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="samples", db_index=False)
    seq = models.BigIntegerField()
    at = models.DateTimeField()
    values = models.JSONField(default=dict)
    # The sample as the runner's full answer writes it (``{"at": ..., ...values}``), written by
    # PostgreSQL when the row is stored (migration 0015's trigger): an answer at the cap joins
    # 2000 of these instead of writing each anew. NULL on SQLite, and on rows stored before.
    json_text = models.TextField(null=True, editable=False)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="sample_run_seq")]

    def __str__(self) -> str:
        return f"{self.run_id}@{self.seq}"


class RunNode(models.Model):
    """Per-node execution record of a run, upserted by ``nodeId``."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="nodes", db_index=False)
    node_id = models.CharField(max_length=200)
    type = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    retries = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "node_id"], name="node_run_node_id")]

    def __str__(self) -> str:
        return f"{self.run_id}/{self.node_id}"


class PatchReceipt(models.Model):
    """An ``Idempotency-Key`` a runner sent with a PATCH that was applied.

    A retried PATCH carrying the same key finds its receipt and changes nothing, so an append or a
    claim retried after a timeout is stored once.
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+", db_index=False)
    key = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="receipt_run_key")]
        # prune_patch_receipts deletes the oldest in batches.
        indexes = [models.Index(fields=["created_at"], name="receipt_created_idx")]

    def __str__(self) -> str:
        return f"{self.run_id}:{self.key}"


class SavedView(models.Model):
    """A name for a Runs page query (filters, exclusions, sort, columns): its owner's, or
    shared with everyone (sharing needs the operator role). ``query`` is the page's query string
    as ``runs.views_saved.normalise_query`` writes it."""

    public_id = models.CharField(max_length=40, unique=True, default=saved_view_id, editable=False)
    name = models.CharField(max_length=100)
    query = models.CharField(max_length=2000, blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    shared = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            models.Index(fields=["owner", "name"], name="savedview_owner_idx"),
            models.Index(fields=["name"], name="savedview_shared_idx", condition=Q(shared=True)),
        ]
        permissions = [("share_savedview", "Can share saved views with everyone")]

    def __str__(self) -> str:
        return self.name


class BulkAction(models.TextChoices):
    CANCEL = "cancel"
    RERUN = "rerun"


class BulkJobState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"


class BulkJob(models.Model):
    """A bulk cancel or re-run over a filter (or a list of run ids), pinned to the runs that
    existed when it was previewed (``boundary_pk``). Worked in run id order from ``position``:
    each run is handled in its own transaction, which also moves ``position`` and the counts, so
    a job resumed after a worker died touches no run twice."""

    public_id = models.CharField(max_length=40, unique=True, default=bulk_job_id, editable=False)
    action = models.CharField(max_length=10, choices=BulkAction.choices)
    state = models.CharField(
        max_length=10, choices=BulkJobState.choices, default=BulkJobState.QUEUED
    )
    # The list filters as given (parameter -> list of values), or None for an id selection.
    filter = models.JSONField(null=True, blank=True)
    run_ids = models.JSONField(null=True, blank=True)
    boundary_pk = models.BigIntegerField(help_text="The newest run id the job may touch.")
    snapshot_at = models.DateTimeField()
    position = models.BigIntegerField(default=0, help_text="The last run id handled.")
    matched = models.PositiveIntegerField(default=0)
    touched = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    skip_reasons = models.JSONField(default=dict, blank=True)
    failures = models.JSONField(default=list, blank=True)
    source = models.CharField(max_length=20, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["heartbeat_at"],
                name="bulkjob_unfinished_idx",
                condition=Q(state__in=["queued", "running"]),
            )
        ]
        permissions = [("bulk_run", "Can cancel or re-run many runs at once")]

    def __str__(self) -> str:
        return self.public_id


class PipelineDay(models.Model):
    """One pipeline's runs created on one closed UTC day, summed once (``runs.rollup``): the
    counts by status, and the succeeded runs' durations (seconds), rows and bytes, each sorted,
    so that window figures read a row a day instead of every run. ``complete`` is false while
    a run of that day is not final, or after a change to one of its runs: readers then count
    that day from the runs, and the next build sums it again. A row with no pipeline marks a
    day as built: a pipeline with no row on a built day had no run on it."""

    pipeline = models.ForeignKey(
        "pipelines.Pipeline", null=True, on_delete=models.CASCADE, related_name="+"
    )
    day = models.DateField()
    complete = models.BooleanField(default=True)
    runs = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    canceled = models.PositiveIntegerField(default=0)
    # Comma-separated numbers, in ascending order: read back by the thousand, they are joined
    # and parsed as one JSON array (``rollup.read``), which no JSON column would be as cheaply.
    durations = models.TextField(blank=True)
    rows = models.TextField(blank=True)
    sizes = models.TextField(blank=True)
    built_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "day"], name="pipelineday_pipeline_day"),
            models.UniqueConstraint(
                fields=["day"], name="pipelineday_built_day", condition=Q(pipeline__isnull=True)
            ),
        ]
        indexes = [
            models.Index(fields=["day"], name="pipelineday_open_idx", condition=Q(complete=False))
        ]

    def __str__(self) -> str:
        return f"{self.pipeline_id or 'built'}:{self.day}"
