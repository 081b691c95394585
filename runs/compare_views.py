"""Run-to-run comparison page (``/runs/{id}/compare/?with=``), the same figures as
``GET /api/runs/{id}/compare``."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from common.actors import page_requires
from common.roles import Perm
from runs import compare, selectors
from runs.pipeline_charts import overlay_curves_svg


@login_required
@page_requires(Perm.VIEW_RUNS, doing="seeing runs")
@require_GET
def run_compare(request: HttpRequest, public_id: str) -> HttpResponse:
    run = selectors.run_get(public_id=public_id)
    if run is None:
        raise Http404("No such run.")
    other_id = request.GET.get("with", "").strip()[:100]
    status, error, other, basis = 200, None, None, "picked"
    if other_id:
        other = selectors.run_get(public_id=other_id)
        if other is None:
            status, error = 404, f"No run {other_id} to compare with: pick another."
    else:
        other = compare.previous_succeeded(run=run)
        basis = "previous-succeeded"
        if other is None:
            error = "This pipeline has no succeeded run before this one: pick a run to compare."
    comparison = compare.run_compare(run=run, other=other, basis=basis) if other else None
    context = {
        "run": run,
        "comparison": comparison,
        "error": error,
        "with_id": other_id,
        "candidates": compare.recent_of_pipeline(run=run),
        "overlay": overlay_curves_svg(
            [
                ("curve-run", run.public_id, comparison.run.curve),
                ("curve-with", comparison.other.run.public_id, comparison.other.curve),
            ]
        )
        if comparison
        else "",
    }
    return render(request, "runs/run_compare.html", context, status=status)
