"""Reference endpoints for the benchmark (``python -m bench.cost``), mounted only when
``BENCH_ENDPOINTS`` is on (never by default): what a request costs at the framework's floor on
this machine, measured in the same run as the runner routes so that their rates can be stated as
ratios of it.

- ``PATCH /bench/floor/<run_id>``: a plain DRF APIView, no authentication, no throttling, the
  project's JSON parser and renderer, doing one indexed UPDATE (the run's ``updated_at`` by
  public id);
- ``PATCH /bench/bare/<run_id>``: the same UPDATE from a bare Django view (no DRF);
- ``GET /bench/noop``: a bare Django view doing nothing (what a 401 is compared with).
"""

from django.http import HttpResponse, JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from rest_framework.response import Response
from rest_framework.views import APIView

from common.sql import touch_row
from runs.models import Run


def _touch(run_id: str) -> int:
    return touch_row(
        Run, key_field="public_id", key=run_id, field="updated_at", value=timezone.now()
    )


class FloorView(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []

    def patch(self, request, run_id: str):
        fields = len(request.data)  # the body is parsed like every API body
        return Response({"updated": _touch(run_id), "fields": fields})


@csrf_exempt
def bare_view(request, run_id: str):
    return JsonResponse({"updated": _touch(run_id)})


def noop_view(request):
    return HttpResponse(b"{}", content_type="application/json")


urlpatterns = [
    path("bench/floor/<str:run_id>", FloorView.as_view(), name="bench-floor"),
    path("bench/bare/<str:run_id>", bare_view, name="bench-bare"),
    path("bench/noop", noop_view, name="bench-noop"),
]
