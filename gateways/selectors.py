"""Reads of gateways."""

from common.errors import InvalidInput
from gateways.models import Gateway


def gateway_get_by_reference(*, reference: str) -> Gateway | None:
    """A gateway by public id (``gw_...``) or by name."""
    return (
        Gateway.objects.filter(public_id=reference).first()
        or Gateway.objects.filter(name=reference).first()
    )


def gateway_from_reference(reference: str | None, *, field: str) -> Gateway | None:
    """The gateway a caller names in ``field`` (id or name), None when it names none; an
    unknown one is the caller's mistake."""
    if reference is None or reference == "":
        return None
    gateway = gateway_get_by_reference(reference=reference)
    if gateway is None:
        raise InvalidInput(field=field, errors={field: ["No gateway with this id or name."]})
    return gateway
