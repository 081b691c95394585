"""OpenAPI shapes of the runner routes, generated from the ``TypedDict`` return types of the
functions that render them (``runs.representations``): there is no second description to drift.

``typed_dict_schema`` turns a declaration into a schema: fields are required unless
``NotRequired``, ``X | None`` is nullable, ``Annotated[T, {...}]`` adds the dict to T's schema
(a format, a description), and a nested ``TypedDict`` becomes a component of its own. The
postprocessing hook ``add_representation_components`` publishes those components; views refer
to them with ``component_ref``.
"""

import types
import typing
from typing import Any, get_args, get_origin, get_type_hints, is_typeddict

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.plumbing import ResolvedComponent, resolve_type_hint
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from runs.representations import (
    AgentRunList,
    RunListItem,
    RunnerRun,
    RunPageMeta,
    RunRow,
    TelemetryPoint,
)

# One point of a run's telemetry series, as every run representation returns it.
TELEMETRY_SAMPLE_SCHEMA: dict[str, Any] = get_args(TelemetryPoint)[1]
# Pages (``page_ref``) are published by their extension; what they nest is here.
PUBLISHED = (RunnerRun, AgentRunList, RunListItem, RunPageMeta, RunRow)


def component_ref(declaration: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{declaration.__name__}"}


@extend_schema_serializer(many=False)
class TypedPage(serializers.Serializer):
    """Stands for a ``TypedDict`` page in a list action's ``responses``: drf-spectacular
    describes a list action's answer as an array unless its serializer says ``many=False``, and
    only a serializer can say it. Its schema is the declaration's (``TypedPageExtension``)."""

    declaration: type


def page_ref(declaration: type) -> type[TypedPage]:
    return type(f"{declaration.__name__}Page", (TypedPage,), {"declaration": declaration})


class TypedPageExtension(OpenApiSerializerExtension):
    target_class = TypedPage
    match_subclasses = True

    def get_name(self, auto_schema, direction) -> str:
        return self.target.declaration.__name__

    def map_serializer(self, auto_schema, direction) -> dict[str, Any]:
        # Its nested declarations are published components (``PUBLISHED``).
        return typed_dict_schema(self.target.declaration, {})


def typed_dict_schema(declaration: Any, components: dict[str, Any]) -> dict[str, Any]:
    """The object schema of a ``TypedDict``; nested ones are added to ``components``."""
    hints = get_type_hints(declaration, include_extras=True)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: _schema(hint, components) for name, hint in hints.items()},
        "required": [name for name in hints if name in declaration.__required_keys__],
    }
    if declaration.__doc__ and not declaration.__doc__.startswith(declaration.__name__ + "("):
        schema["description"] = " ".join(declaration.__doc__.split())
    return schema


def _schema(hint: Any, components: dict[str, Any]) -> dict[str, Any]:
    origin = get_origin(hint)
    if origin is typing.Annotated:
        base, *extras = get_args(hint)
        schema = _schema(base, components)
        for extra in extras:
            schema.update(extra)
        return schema
    if origin in (typing.NotRequired, typing.Required):
        return _schema(get_args(hint)[0], components)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in get_args(hint) if arg is not type(None)]
        [option] = options  # one type or None: what the representations use
        schema = _schema(option, components)
        if type(None) in get_args(hint):
            if "$ref" in schema:
                return {"allOf": [schema], "nullable": True}
            schema["nullable"] = True
        return schema
    if origin is list:
        return {"type": "array", "items": _schema(get_args(hint)[0], components)}
    if is_typeddict(hint):
        if hint.__name__ not in components:
            components[hint.__name__] = {}  # reserved first: a declaration may nest itself
            components[hint.__name__] = typed_dict_schema(hint, components)
        return component_ref(hint)
    return resolve_type_hint(hint)


def representation_components() -> dict[str, Any]:
    components: dict[str, Any] = {}
    for declaration in PUBLISHED:
        _schema(declaration, components)
    return components


def add_representation_components(result, generator, request, public):
    """drf-spectacular postprocessing hook, before the enum hook (which rebuilds the components
    from the generator's registry, and then names the enums these use): the runner
    representations as components."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in representation_components().items():
        component = ResolvedComponent(
            name=name, type=ResolvedComponent.SCHEMA, object=name, schema=schema
        )
        generator.registry.register_on_missing(component)
        schemas.setdefault(name, schema)
    return result
