"""The log search page (``/logs/``): find a text in every kept log, across runs, with the run
list filters; each hit opens run detail at its line."""

import re
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from common.actors import page_requires
from common.errors import InvalidInput
from common.roles import Perm
from common.web import wants_fragment
from gateways.models import Gateway
from pipelines.models import Pipeline
from runs.filters import WINDOW_LABELS
from runs.log_search import encode_log_cursor, log_search, parse_log_search
from runs.models import LogLine, RunStatus

PAGE_SIZE = 50
SELECT_PARAMS = ("q", "pipelineId", "gatewayId", "window", "from", "to")


def highlighted(message: str, text: str) -> SafeString:
    """The message with every case-insensitive occurrence of ``text`` in ``<mark>``."""
    pieces = re.split(f"({re.escape(text)})", message, flags=re.IGNORECASE)
    return format_html_join(
        "",
        "{}",
        (
            (format_html("<mark>{}</mark>", piece) if index % 2 else piece,)
            for index, piece in enumerate(pieces)
        ),
    )


def _hit_rows(hits: list[LogLine], text: str) -> list[dict[str, Any]]:
    detail_url = reverse("runs:detail", args=["RUN_ID"])
    return [
        {
            "line": line,
            "url": f"{detail_url.replace('RUN_ID', line.run.public_id)}#L{line.seq}",
            "message": highlighted(line.message, text),
        }
        for line in hits
    ]


@login_required
@page_requires(Perm.VIEW_RUNS, doing="seeing runs")
@require_GET
@vary_on_headers("HX-Request")
def log_search_page(request: HttpRequest) -> HttpResponse:
    params = request.GET
    context: dict[str, Any] = {
        "selected": {key: params.get(key, "") for key in SELECT_PARAMS},
        "selected_statuses": [s for chunk in params.getlist("status") for s in chunk.split(",")],
        "statuses": RunStatus.choices,
        "windows": list(WINDOW_LABELS.items()),
        "rows": [],
        "errors": None,
        "older_url": None,
        "searched": False,
    }
    status = 200
    if "q" in params:
        try:
            query = parse_log_search(params, limit_default=PAGE_SIZE)
        except InvalidInput as error:
            context["errors"] = error.errors
            status = 400
        else:
            page = log_search(query=query)
            context.update(searched=True, rows=_hit_rows(page.hits, query.text))
            if page.older:
                older = params.copy()
                older["cursor"] = encode_log_cursor(page.older)
                context["older_url"] = f"{request.path}?{older.urlencode()}"
            context["is_first_page"] = not params.get("cursor")
            context["first_url"] = f"{request.path}?" + urlencode(
                [(k, v) for k, values in params.lists() if k != "cursor" for v in values]
            )
    if wants_fragment(request):
        return render(request, "runs/log_search.html#search-results", context, status=status)
    context["pipelines"] = Pipeline.objects.order_by("name").values_list("public_id", "name")
    context["gateways"] = Gateway.objects.order_by("name").values_list("public_id", "name")
    return render(request, "runs/log_search.html", context, status=status)
