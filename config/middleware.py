"""Keep every answer under /api/ JSON, whatever failed and wherever it failed."""

import logging

from django.contrib.messages.middleware import MessageMiddleware
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse

logger = logging.getLogger(__name__)


class ApiErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith("/api/") or response.get("Content-Type", "").startswith(
            "application/json"
        ):
            return response
        if response.status_code == 404:
            return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
        if response.status_code == 400:
            return JsonResponse({"detail": "Bad request.", "code": "bad_request"}, status=400)
        if response.status_code == 500:
            return JsonResponse({"detail": "Server error.", "code": "server_error"}, status=500)
        return response

    def process_exception(self, request, exception):
        if not request.path.startswith("/api/"):
            if isinstance(exception, OperationalError | InterfaceError):
                # Pages too: a database restart is "try again shortly", not a server bug.
                logger.warning("database unavailable: %s", type(exception).__name__)
                response = HttpResponse(
                    "The service is briefly unavailable; retry in a moment.",
                    status=503,
                    content_type="text/plain; charset=utf-8",
                )
                response["Retry-After"] = "2"
                return response
            return None
        if isinstance(exception, RequestDataTooBig):
            return JsonResponse(
                {"detail": "Request body is too large.", "code": "payload_too_large"}, status=413
            )
        if isinstance(exception, OperationalError | InterfaceError):
            logger.warning("database unavailable: %s", type(exception).__name__)
            response = JsonResponse(
                {"detail": "The database is unavailable; retry shortly.", "code": "unavailable"},
                status=503,
            )
            response["Retry-After"] = "2"
            return response
        if isinstance(exception, DatabaseError):
            logger.exception("database error")
            return JsonResponse({"detail": "Server error.", "code": "server_error"}, status=500)
        return None


class PageMessageMiddleware(MessageMiddleware):
    """Django's messages for the pages only: no API route reads or adds one, so its storage
    (a cookie signer and a session storage built per request) is not set up for ``/api/``."""

    def process_request(self, request):
        if not request.path.startswith("/api/"):
            super().process_request(request)
