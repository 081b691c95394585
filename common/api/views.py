"""The base every API view of the project shares: DRF's ``APIView`` plus the checks that hold
for every route, done once here rather than in each handler."""

from typing import Any

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
