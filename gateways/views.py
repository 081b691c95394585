from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.cache import patch_vary_headers

from gateways.selectors import gateway_health_list


@login_required
def gateway_list(request: HttpRequest) -> HttpResponse:
    """The gateways panel: status, last seen, running and queued runs per gateway."""
    template = "gateways/gateway_list.html"
    if request.htmx and not request.htmx.boosted and not request.htmx.history_restore_request:
        template += "#gateway-table"
    response = TemplateResponse(request, template, {"rows": gateway_health_list()})
    patch_vary_headers(response, ["HX-Request"])
    return response
