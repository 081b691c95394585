"""The webhook deliveries panel of run detail, served by this app (the runs app does not know
about webhooks); run detail loads it with htmx and links to it for use without JavaScript."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from common.actors import page_requires
from common.roles import Perm
from common.web import wants_fragment
from runs.selectors import run_get
from webhooks.models import DeliveryStatus
from webhooks.selectors import webhook_deliveries_for_run


@login_required
@page_requires(Perm.VIEW_RUNS, doing="seeing runs")
@require_GET
@vary_on_headers("HX-Request")
def run_deliveries(request: HttpRequest, public_id: str) -> HttpResponse:
    run = run_get(public_id=public_id)
    if run is None:
        raise Http404("No such run.")
    deliveries = list(webhook_deliveries_for_run(run=run))
    context = {
        "run": run,
        "deliveries": deliveries,
        # Refresh while something can still change: the run's event is not recorded yet, or a
        # delivery is still being attempted.
        "polling": not run.is_final
        or any(delivery.status == DeliveryStatus.PENDING for delivery in deliveries),
    }
    template = "webhooks/run_deliveries.html"
    if wants_fragment(request):
        template += "#deliveries-panel"
    return render(request, template, context)
