"""The protobuf JSON mapping used by REST bodies and ``--json`` output.

Kept apart from ``convert.py`` so the client and CLI can use it without importing the
service layer (and SQLAlchemy) at start-up.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message


def to_json(message: Message) -> dict[str, Any]:
    """The protobuf JSON mapping with the .proto field names and every field present."""
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
