"""The base every API view of the project shares: DRF's ``APIView`` plus the checks that hold
for every route, done once here rather than in each handler."""

import functools
from typing import Any

from django.core.signals import setting_changed
from django.http import HttpResponse
from rest_framework import viewsets
from rest_framework.views import APIView

from common.api.params import refuse_nul_characters


class ApiViewMixin:
    """After authentication, permissions and throttles, before the handler: a query parameter
    (name or value) holding a NUL character is refused with a 400 naming it, since PostgreSQL
    cannot take one."""

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        refuse_nul_characters(request.query_params)


class ApiView(ApiViewMixin, APIView):
    pass


class ApiViewSet(ApiViewMixin, viewsets.ViewSet):
    pass


class ApiGenericViewSet(ApiViewMixin, viewsets.GenericViewSet):
    pass


# A credential-free replay answers only requests with no Accept header or one that picks the
# JSON renderer outright; anything else (an empty header among them) may be DRF's 406.
_PLAIN_ACCEPT = frozenset(["*/*", "application/json"])
_replayed_views: list[dict[str, Any]] = []


def _forget_replays(**kwargs: Any) -> None:
    """A changed setting (in tests) may change what DRF answers: ask it again."""
    for replay in _replayed_views:
        replay.clear()


setting_changed.connect(_forget_replays)


def replays_credential_free_refusal(request: Any) -> bool:
    """Whether ``request`` carries nothing a bearer-only view's answer could depend on: no
    ``Authorization`` header, no query string (``?format=`` picks a renderer) and a plain
    ``Accept``. DRF then refuses it with the same 401 whatever its method, path or body."""
    meta = request.META
    return (
        "HTTP_AUTHORIZATION" not in meta
        and not meta.get("QUERY_STRING")
        and ("HTTP_ACCEPT" not in meta or meta["HTTP_ACCEPT"].strip() in _PLAIN_ACCEPT)
    )


class BearerOnlyApiView(ApiView):
    """A machine route whose only credential is the ``Authorization`` header (every
    authentication class says ``reads_only_authorization_header``): no session, no cookie.

    A request without that header is refused with a 401 before any handler runs, and DRF's
    answer to it depends on nothing in the request (``replays_credential_free_refusal``). So
    the first such request of each process goes through DRF, and the later ones get a copy of
    its answer (status, body, every header) without DRF's dispatch, negotiation, exception
    handler and renderer: a runner that lost its token, or a scanner, costs what a bare Django
    view costs (bench/RESULTS.md, issue 18). Everything else goes through DRF as ever.
    """

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        for authentication in cls.authentication_classes:
            if not getattr(authentication, "reads_only_authorization_header", False):
                raise TypeError(
                    f"{cls.__name__}: {authentication.__name__} may read more than the "
                    "Authorization header; a credential-free answer cannot be replayed"
                )
        view = super().as_view(**initkwargs)
        replay: dict[str, Any] = {}
        _replayed_views.append(replay)

        @functools.wraps(view)  # keeps csrf_exempt, cls and initkwargs
        def bearer_only_view(request: Any, *args: Any, **kwargs: Any) -> Any:
            if not replays_credential_free_refusal(request):
                return view(request, *args, **kwargs)
            answer = replay.get("answer")
            if answer is not None:
                status, content, headers = answer
                return HttpResponse(content, status=status, headers=headers)
            response = view(request, *args, **kwargs)
            if response.status_code == 401:
                response.render()
                replay["answer"] = (
                    response.status_code,
                    response.content,
                    dict(response.headers.items()),
                )
            return response

        bearer_only_view.drf_view = view  # type: ignore[attr-defined]
        return bearer_only_view
