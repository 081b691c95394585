"""The domain errors every service raises; the API edge (``common.api.errors``) and the pages map
them to HTTP, so a service never speaks HTTP and every caller refuses the same way.

    DomainError            the base: a message, a machine code and, optionally, a field
      InvalidInput         400: the input is wrong (``errors`` maps field paths to reasons)
      PermissionDenied     403: the actor may not do this (``role`` names the role that may)
      NotFound             404: no such object, or one the actor may not see
      Conflict             409: the object's state does not allow the change
"""

from typing import Any

from django.core import exceptions as django_exceptions


class DomainError(Exception):
    status_code = 400
    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    @property
    def errors(self) -> dict[str, list[str]]:
        return {self.field: [self.message]} if self.field else {}


class InvalidInput(DomainError):
    status_code = 400
    code = "invalid"

    def __init__(
        self, message: str = "", *, field: str | None = None, errors: dict[str, Any] | None = None
    ) -> None:
        self._errors = {key: list(value) for key, value in (errors or {}).items()}
        if not message and self._errors:
            name, reasons = next(iter(self._errors.items()))
            message = f"{name}: {reasons[0]}"
        super().__init__(message, field=field)

    @property
    def errors(self) -> dict[str, list[str]]:
        return self._errors or super().errors


class PermissionDenied(DomainError, django_exceptions.PermissionDenied):
    """Also Django's own, so that a page raising it answers with the 403 page."""

    status_code = 403
    code = "permission_denied"

    def __init__(self, message: str, *, role: str | None = None, field: str | None = None):
        super().__init__(message, field=field)
        self.role = role


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"
