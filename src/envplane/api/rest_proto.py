"""REST bodies are the protobuf JSON mapping of the ``envplane.v1`` messages; this module makes
the OpenAPI document say so, from the ``.proto`` contract itself.

:func:`message_schema` turns a message descriptor into the JSON Schema of its JSON mapping as
``protojson.to_json`` renders it (``.proto`` field names, every field present except unset
messages, 64-bit integers as strings, enums by name), and :func:`proto_response` documents a
route's answer with it. The schema cannot drift from the messages: it is derived from them.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import JSONResponse

from envplane.api.protojson import to_json
from envplane.errors import InvalidArgument

Schema = dict[str, Any]
M = TypeVar("M", bound=Message)
_T = FieldDescriptor
_INTEGER_32 = {_T.TYPE_INT32, _T.TYPE_SINT32, _T.TYPE_SFIXED32, _T.TYPE_UINT32, _T.TYPE_FIXED32}
_INTEGER_64 = {_T.TYPE_INT64, _T.TYPE_SINT64, _T.TYPE_SFIXED64, _T.TYPE_UINT64, _T.TYPE_FIXED64}


def _scalar_schema(field: FieldDescriptor) -> Schema:
    kind = field.type
    if kind in _INTEGER_32:
        return {"type": "integer"}
    if kind in _INTEGER_64:
        return {"type": "string", "pattern": "^-?[0-9]+$", "description": "a 64-bit integer, as a string"}
    if kind in (_T.TYPE_DOUBLE, _T.TYPE_FLOAT):
        return {"type": "number"}
    if kind == _T.TYPE_BOOL:
        return {"type": "boolean"}
    if kind == _T.TYPE_BYTES:
        return {"type": "string", "format": "byte"}
    if kind == _T.TYPE_ENUM and field.enum_type is not None:
        return {"type": "string", "enum": [value.name for value in field.enum_type.values]}
    if kind == _T.TYPE_MESSAGE and field.message_type is not None:
        return message_schema(field.message_type)
    return {"type": "string"}


def _field_schema(field: FieldDescriptor) -> Schema:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value = field.message_type.fields_by_name["value"]
        return {"type": "object", "additionalProperties": _scalar_schema(value)}
    if field.is_repeated:
        return {"type": "array", "items": _scalar_schema(field)}
    return _scalar_schema(field)


def message_schema(descriptor: Descriptor, *, omit: tuple[str, ...] = (), request: bool = False) -> Schema:
    """The JSON Schema of ``to_json(<message>)`` for messages of this descriptor; with
    ``request``, of a request body (every field optional: unset is the default)."""
    fields = [f for f in descriptor.fields if f.name not in omit]
    properties = {field.name: _field_schema(field) for field in fields}
    # Fields without presence are always printed; a singular message field only when set.
    required = [] if request else [f.name for f in fields if f.is_repeated or not f.has_presence]
    return {
        "title": descriptor.full_name,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def proto_response(message: type[Message], description: str, media_type: str = "application/json") -> Schema:
    """An OpenAPI response entry whose body is ``message``'s JSON mapping."""
    descriptor = cast(Descriptor, message.DESCRIPTOR)  # the C (upb) descriptor has the same interface
    return {"description": description, "content": {media_type: {"schema": message_schema(descriptor)}}}


class ProtoResponse(JSONResponse):
    """A JSON response from a protobuf message (its JSON mapping)."""

    def render(self, content: Any) -> bytes:
        return super().render(to_json(content) if isinstance(content, Message) else content)


def proto_request_body(message: type[Message], description: str, *, omit: tuple[str, ...] = ()) -> Schema:
    """``openapi_extra`` for a route whose JSON body is ``message``'s JSON mapping (``omit``:
    fields the path gives)."""
    descriptor = cast(Descriptor, message.DESCRIPTOR)
    schema = message_schema(descriptor, omit=omit, request=True)
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    }


async def read_proto_body(request: Request, message: type[M], *, omit: tuple[str, ...] = ()) -> M:
    """The body as ``message``, by the protobuf JSON mapping; unknown fields (a typo), wrong
    types and the ``omit`` fields (the path gives them) are INVALID_ARGUMENT naming the problem."""
    raw = await request.body()
    try:
        data = json.loads(raw or b"{}")
    except ValueError as exc:
        raise InvalidArgument(f"the request body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidArgument("the request body must be a JSON object")
    given = sorted(set(data) & set(omit))
    if given:
        raise InvalidArgument(f"the request body must not set {', '.join(given)}: the path gives it")
    try:
        return json_format.ParseDict(data, message())
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise InvalidArgument(f"the request body is not a valid {message.DESCRIPTOR.name}: {exc}") from None
