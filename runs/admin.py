"""Admin for runs: a read-only view of the table, fast with millions of rows, plus cancel and
re-run through the services (every run write goes through ``runs.services``).

What keeps the changelist cheap: no full-table count (``show_full_result_count = False`` and a
paginator that estimates or caps the count), no ``date_hierarchy`` (it counts per date), filters
whose choices come from the small tables (gateways, pipelines) instead of a DISTINCT over runs,
sorting only on the indexed ``created_at``, search by run id prefix (the unique index serves it).
"""

import re

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import cached_property

from common.actors import actor_from_request
from common.errors import Conflict
from gateways.admin import GatewayTokenInline
from gateways.models import Gateway, GatewayHealth
from runs.models import BulkJob, Run, RunStatus, SavedView
from runs.selectors import gateway_queryset_with_counts
from runs.services import run_cancel, run_rerun

RUN_ID_PREFIX = re.compile(r"^run_[0-9a-z]{1,26}$")


class EstimatedCountPaginator(Paginator):
    """A paginator that never counts a huge table.

    Unfiltered on PostgreSQL, the planner's row estimate (``pg_class.reltuples``) is used once it
    passes the cap; otherwise the count stops at ``count_cap`` rows (a COUNT over a LIMIT
    subquery). Past the cap, pages are reachable by filtering, which is what anyone looking for
    a run in a million does anyway.
    """

    count_cap = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        connection = connections[queryset.db]
        if connection.vendor == "postgresql" and not queryset.query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                    [queryset.model._meta.db_table],
                )
                row = cursor.fetchone()
            estimate = row[0] if row else -1
            if estimate > self.count_cap:
                return int(estimate)
        return queryset.order_by()[: self.count_cap].count()


class RunChangeList(ChangeList):
    """Honours ``?o=`` only for the columns in ``sortable_by``: the admin would otherwise sort a
    million runs by any column named in the URL (a gateway's name, say) without an index."""

    def get_ordering_field(self, field_name):
        if field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)

    def get_ordering(self, request, queryset):
        ordering = super().get_ordering(request, queryset)
        if ordering in (["-pk"], ["pk"]):  # every requested column was refused: the default
            return ["-created_at", "-pk"]
        return ordering


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = [
        "public_id",
        "status_display",
        "pipeline",
        "gateway",
        "trigger_type",
        "created_at",
        "started_at",
        "duration",
        "last_report_at",
        "rows_loaded",
    ]
    list_filter = ["status", "trigger_type", "gateway", "pipeline"]
    list_select_related = ["pipeline", "gateway"]
    list_per_page = 50
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    sortable_by = ["created_at"]
    search_fields = ["=public_id"]
    search_help_text = "A run id or its beginning (run_01j…), or a pipeline or gateway name."
    raw_id_fields = ["pipeline", "gateway", "created_by", "rerun_of"]
    actions = ["cancel_selected", "rerun_selected"]
    change_form_template = "admin/runs/run/change_form.html"
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "public_id",
                    "status",
                    "pipeline",
                    "gateway",
                    "trigger_type",
                    "trigger",
                    "created_by",
                    "rerun_of",
                ]
            },
        ),
        (
            "Timing",
            {
                "fields": [
                    "created_at",
                    "started_at",
                    "finished_at",
                    "last_report_at",
                    "cancel_requested_at",
                    "updated_at",
                ]
            },
        ),
        (
            "Outcome",
            {"fields": ["error_summary", "rows_loaded", "bytes_loaded", "progress"]},
        ),
        ("Telemetry", {"fields": ["telemetry_summary"], "classes": ["collapse"]}),
    ]

    def get_changelist(self, request, **kwargs):
        return RunChangeList

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("pipeline", "gateway", "created_by")

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if RUN_ID_PREFIX.match(term):
            return queryset.filter(public_id__startswith=term), False
        # Exact names hit the unique indexes on the small tables, then the runs' FK indexes.
        by_name = queryset.filter(pipeline__name=term) | queryset.filter(gateway__name=term)
        return by_name, False

    # Runs change only through the services: the change form is a read-only view.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm("runs.cancel_run")

    def has_rerun_permission(self, request) -> bool:
        return request.user.has_perm("runs.trigger_run")

    @admin.display(description="status", ordering="status")
    def status_display(self, run: Run) -> str:
        if run.status == RunStatus.QUEUED and run.gateway and run.gateway.queued_runs_stranded():
            return "queued (gateway away)"
        return run.get_status_display()

    @admin.display(description="duration")
    def duration(self, run: Run) -> str:
        seconds = run.duration_seconds
        if seconds is None:
            return "-"
        minutes, seconds = divmod(seconds, 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours}:{minutes:02}:{seconds:02}" if hours else f"{minutes}:{seconds:02}"

    def _cancel(self, request: HttpRequest, run: Run) -> bool:
        """Cancel one run (the service checks and records it); False when it was final."""
        try:
            run = run_cancel(run=run, actor=actor_from_request(request))
        except Conflict:
            return False
        self.log_change(request, run, f"Cancel requested: now {run.status}.")
        return True

    def _rerun(self, request: HttpRequest, run: Run) -> Run | None:
        """Re-run one run; None when it has not finished yet."""
        try:
            new_run = run_rerun(run=run, actor=actor_from_request(request))
        except Conflict:
            return None
        self.log_change(request, run, f"Re-run as {new_run.public_id}.")
        return new_run

    @admin.action(description="Cancel selected runs", permissions=["cancel"])
    def cancel_selected(self, request, queryset):
        runs = list(queryset)
        done = sum(self._cancel(request, run) for run in runs)
        skipped = len(runs) - done
        message = f"Cancel requested for {done} run(s)."
        if skipped:
            message += f" {skipped} already finished, left as they were."
        self.message_user(request, message, messages.SUCCESS if done else messages.WARNING)

    @admin.action(description="Re-run selected runs", permissions=["rerun"])
    def rerun_selected(self, request, queryset):
        runs = list(queryset)
        new_runs = [new for new in (self._rerun(request, run) for run in runs) if new]
        ids = ", ".join(run.public_id for run in new_runs[:5])
        more = f" and {len(new_runs) - 5} more" if len(new_runs) > 5 else ""
        message = f"Queued {len(new_runs)} re-run(s): {ids}{more}."
        if len(new_runs) < len(runs):
            message += f" {len(runs) - len(new_runs)} not finished yet, left as they were."
        self.message_user(request, message)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/cancel/",
                self.admin_site.admin_view(self.cancel_view),
                name="runs_run_cancel",
            ),
            path(
                "<path:object_id>/rerun/",
                self.admin_site.admin_view(self.rerun_view),
                name="runs_run_rerun",
            ),
            *super().get_urls(),
        ]

    def _confirm_or_act(self, request, object_id, *, allowed, act, title, text, button):
        run = self.get_object(request, object_id)
        if run is None:
            raise Http404
        if not allowed(request):
            raise PermissionDenied
        change_url = reverse("admin:runs_run_change", args=[run.pk])
        if request.method == "POST":
            return act(run, change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title.format(run=run),
            "object": run,
            "text": text,
            "button": button,
            "cancel_url": change_url,
        }
        return TemplateResponse(request, "admin/gateways/confirm.html", context)

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def act(run: Run, change_url: str) -> HttpResponse:
            if self._cancel(request, run):
                self.message_user(request, f"Cancel requested for {run}.", messages.SUCCESS)
            else:
                self.message_user(request, f"{run} is already finished.", messages.WARNING)
            return HttpResponseRedirect(change_url)

        return self._confirm_or_act(
            request,
            object_id,
            allowed=self.has_cancel_permission,
            act=act,
            title="Cancel {run}?",
            text="A queued run is canceled at once. A running run is asked to stop: its runner "
            "sees the request on its next report and confirms; without a confirmation the run is "
            "marked canceled after the grace period.",
            button="Yes, cancel",
        )

    def rerun_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def act(run: Run, change_url: str) -> HttpResponse:
            new_run = self._rerun(request, run)
            if new_run is None:
                self.message_user(
                    request,
                    f"{run} has not finished; only a finished run can be re-run.",
                    messages.WARNING,
                )
                return HttpResponseRedirect(change_url)
            self.message_user(request, f"Queued {new_run} as a re-run of {run}.")
            return HttpResponseRedirect(reverse("admin:runs_run_change", args=[new_run.pk]))

        return self._confirm_or_act(
            request,
            object_id,
            allowed=self.has_rerun_permission,
            act=act,
            title="Re-run {run}?",
            text="A new queued run of the same pipeline, on the same gateway, is created.",
            button="Yes, re-run",
        )


# Gateways are administered here rather than in gateways/admin.py because their change list
# shows each gateway's running and queued runs (gateways do not know about runs).


@admin.register(Gateway)
class GatewayAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "public_id",
        "health",
        "last_seen_at",
        "last_seen_ip",
        "running",
        "queued",
        "live_tokens",
        "lease_seconds",
        "poll_interval_seconds",
    ]
    search_fields = ["name", "=public_id"]
    readonly_fields = ["public_id", "health", "last_seen_at", "last_seen_ip", "created_at"]
    fields = [
        "name",
        "public_id",
        "description",
        "lease_seconds",
        "poll_interval_seconds",
        "health",
        "last_seen_at",
        "last_seen_ip",
        "created_at",
    ]
    inlines = [GatewayTokenInline]
    change_form_template = "admin/gateways/gateway/change_form.html"

    def get_queryset(self, request):
        return gateway_queryset_with_counts()

    @admin.display(description="status")
    def health(self, obj: Gateway) -> str:
        status = obj.health()
        label = GatewayHealth(status).label
        if status == GatewayHealth.ONLINE or obj.last_seen_at is None:
            return label
        return f"{label} since {obj.last_seen_at:%Y-%m-%d %H:%M} UTC"

    @admin.display(description="running", ordering="running_count")
    def running(self, obj: Gateway) -> int:
        return obj.running_count

    @admin.display(description="queued", ordering="queued_count")
    def queued(self, obj: Gateway) -> str:
        if obj.queued_count and obj.queued_runs_stranded():
            return f"{obj.queued_count} (stranded: gateway away)"
        return str(obj.queued_count)

    @admin.display(description="live tokens", ordering="live_token_count")
    def live_tokens(self, obj: Gateway) -> int:
        return obj.live_token_count


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shown to admins, changed only through the app and the API (whose services check the
    actor and write the audit trail)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(BulkJob)
class BulkJobAdmin(ReadOnlyAdmin):
    list_display = [
        "public_id",
        "action",
        "state",
        "matched",
        "touched",
        "skipped",
        "failed",
        "created_by",
        "created_at",
        "finished_at",
    ]
    list_filter = ["action", "state"]
    list_select_related = ["created_by"]
    search_fields = ["public_id"]


@admin.register(SavedView)
class SavedViewAdmin(ReadOnlyAdmin):
    list_display = ["name", "public_id", "owner", "shared", "query", "updated_at"]
    list_filter = ["shared"]
    list_select_related = ["owner"]
    search_fields = ["name", "public_id"]

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # A person's views go with them: without this, admin could not delete a user who
        # saved one (it refuses to delete what it may not delete).
        return bool(request.user.is_superuser)
