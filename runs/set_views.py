"""Pages for sets of runs: saved views beside the Runs page's filters, and bulk cancel / re-run
(select rows or "all runs matching this filter", a preview dialog, confirm, live progress).

Each view parses the form, calls one service of ``runs.saved_views`` or ``runs.bulk`` and
renders; the services check the actor and write the audit trail. Without JavaScript every
form is a plain POST and every answer a whole page.
"""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from common.actors import actor_from_request, page_requires
from common.errors import DomainError, InvalidInput
from common.roles import Perm
from common.web import wants_fragment
from runs import bulk, saved_views
from runs.filters import RunFilter

# ---------------------------------------------------------------------------------------------
# What the Runs page shows of views (called by runs.views.run_list and its live poll)


def view_panel_context(request: HttpRequest) -> dict[str, Any]:
    """The views listed beside the filters (one query) and what the person may do with them."""
    actor = actor_from_request(request)
    return {
        "builtin_views": saved_views.builtin_views_opened(),
        "saved_views": list(saved_views.saved_views_for(user=request.user)),
        "can_share_views": actor.has_perm(Perm.SHARE_VIEWS),
    }


def current_view_context(request: HttpRequest) -> dict[str, Any]:
    """The view the page stands for (``?view=``) and whether its query was changed since; the
    columns the page shows (``columns=``, all when absent); whether it offers bulk actions."""
    view_id = request.GET.get("view", "")
    opened = saved_views.view_open(user=request.user, public_id=view_id) if view_id else None
    shown = saved_views.shown_columns(request.GET)
    return {
        "current_view": opened,
        "view_modified": opened is not None and not opened.matches(request.GET.urlencode()),
        "can_bulk": actor_from_request(request).has_perm(Perm.BULK_RUNS),
        "column_choices": [(name, name in shown) for name in saved_views.COLUMNS],
        "hidden_columns": " ".join(name for name in saved_views.COLUMNS if name not in shown),
    }


def view_redirect(request: HttpRequest) -> HttpResponse | None:
    """Where a bare ``/runs/?view=<id>`` or ``/runs/`` goes: the view's own query (so its
    filters are the form's editable state), remembered as the person's last view; ``/runs/``
    opens the last view; ``?view=`` (blank) forgets it. None: render the page as asked."""
    if wants_fragment(request):
        return None
    keys = set(request.GET)
    if not keys:
        last = saved_views.last_view_for(user=request.user)
        return redirect(f"{reverse('runs:list')}?view={last.public_id}") if last else None
    if keys != {"view"}:
        return None
    view_id = request.GET["view"]
    try:
        opened = saved_views.view_opened(actor=actor_from_request(request), view_id=view_id)
    except DomainError:
        raise Http404("No saved view with this id.") from None
    if opened is None or not opened.query:
        return None
    return redirect(f"{reverse('runs:list')}?{opened.query}&view={opened.public_id}")


def _page_query(raw: str) -> QueryDict:
    """The Runs page query a form sent (its URL's query string), without page state."""
    params = QueryDict(raw.strip().removeprefix("?"), mutable=True)
    for name in saved_views.STATE_PARAMS:
        params.pop(name, None)
    return params


# ---------------------------------------------------------------------------------------------
# Saved views


@login_required
@require_POST
def view_save(request: HttpRequest) -> HttpResponse:
    query = _page_query(request.POST.get("query", "")).urlencode()
    try:
        view = saved_views.saved_view_create(
            actor=actor_from_request(request),
            name=request.POST.get("name", ""),
            query=query,
            shared=request.POST.get("shared") == "on",
        )
    except InvalidInput as error:
        messages.error(request, f"The view was not saved: {error.message}")
        return redirect(f"{reverse('runs:list')}?{query}")
    messages.success(request, f"Saved the view “{view.name}”.")
    return redirect(
        f"{reverse('runs:list')}?{view.query}{'&' if view.query else ''}view={view.public_id}"
    )


@login_required
@require_POST
def view_delete(request: HttpRequest, public_id: str) -> HttpResponse:
    view = saved_views.saved_view_get(user=request.user, public_id=public_id)
    if view is None:
        raise Http404("No saved view with this id.")
    name = view.name
    saved_views.saved_view_delete(actor=actor_from_request(request), view=view)
    messages.success(request, f"Deleted the view “{name}”.")
    return redirect(f"{reverse('runs:list')}?view=")


# ---------------------------------------------------------------------------------------------
# Bulk actions


def _selection(post: QueryDict) -> bulk.Selection:
    if post.get("scope") == "filter":
        params = _page_query(post.get("query", ""))
        return bulk.selection_parse(
            filter={
                name: params.getlist(name)
                for name in params
                if name in RunFilter.base_filters and any(params.getlist(name))
            }
        )
    ids = [value for value in post.getlist("ids") if value]
    if not ids:
        raise InvalidInput(
            errors={"ids": ["Select runs first, or pick all runs matching this filter."]}
        )
    return bulk.selection_parse(ids=ids)


def _render_bulk(request: HttpRequest, part: str, context: dict[str, Any], status: int = 200):
    if wants_fragment(request):
        return render(request, f"runs/bulk.html#{part}", context, status=status)
    return render(
        request,
        "runs/bulk_page.html",
        {**context, "part_template": f"runs/bulk.html#{part}"},
        status=status,
    )


@login_required
@page_requires(Perm.BULK_RUNS, doing="running bulk actions")
@require_POST
@vary_on_headers("HX-Request")
def bulk_preview_page(request: HttpRequest) -> HttpResponse:
    post = request.POST
    context: dict[str, Any] = {"scope": post.get("scope", "ids"), "query": post.get("query", "")}
    try:
        action = post.get("action", "")
        selection = _selection(post)
        preview = bulk.bulk_preview(
            actor=actor_from_request(request), action=action, selection=selection
        )
    except InvalidInput as error:
        return _render_bulk(request, "preview", {**context, "errors": error.errors}, status=400)
    context.update(
        preview=preview,
        action=action,
        ids=selection.run_ids or [],
        skip_reasons=bulk.skip_reasons_out(preview.skip_reasons),
        snapshot=preview.snapshot.token(),
    )
    return _render_bulk(request, "preview", context)


@login_required
@page_requires(Perm.BULK_RUNS, doing="running bulk actions")
@require_POST
@vary_on_headers("HX-Request")
def bulk_start_page(request: HttpRequest) -> HttpResponse:
    post = request.POST
    try:
        action = post.get("action", "")
        selection = _selection(post)
        snapshot = bulk.snapshot_parse(post.get("snapshot", ""))
        job = bulk.bulk_start(
            actor=actor_from_request(request),
            action=action,
            selection=selection,
            snapshot=snapshot,
            confirm=post.get("confirm") == "on",
        )
    except InvalidInput as error:
        return _render_bulk(request, "preview", {"errors": error.errors}, status=400)
    if not wants_fragment(request):
        return redirect("runs:bulk-job", public_id=job.public_id)
    return _render_bulk(request, "progress", {"job": bulk.bulk_job_out(job)})


@login_required
@page_requires(Perm.VIEW_RUNS, doing="seeing runs")
@require_GET
@vary_on_headers("HX-Request")
def bulk_job_page(request: HttpRequest, public_id: str) -> HttpResponse:
    job = bulk.bulk_job_get(public_id=public_id)
    if job is None:
        raise Http404("No bulk job with this id.")
    return _render_bulk(request, "progress", {"job": bulk.bulk_job_out(job)})
