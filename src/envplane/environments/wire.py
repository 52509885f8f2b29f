"""``envplane.v1`` request fields from plain values, shared by the clients and the REST face:
an environment's ref from its three ids, a status filter by name. Light (protobuf only), so a
client imports it without the service layer."""

from __future__ import annotations

from envplane.errors import InvalidArgument, echo
from envplane.v1 import environments_pb2 as pb

# The statuses a filter can name (proto's enum wrapper has keys(), not the mapping protocol).
STATUS_NAMES = [name for name in pb.EnvStatus.keys() if name != "ENV_STATUS_UNSPECIFIED"]  # noqa: SIM118


def ref(workflow_id: str, node_id: str, version_id: str = "") -> pb.EnvRef:
    """The ref as given: the daemon validates the ids (``EnvId.parse``)."""
    return pb.EnvRef(workflow_id=workflow_id, node_id=node_id, version_id=version_id)


def status_value(name: str) -> pb.EnvStatus.ValueType:
    """A status filter given by name (REST, CLI, clients): "" = any."""
    if not name:
        return pb.ENV_STATUS_UNSPECIFIED
    if name.upper() not in STATUS_NAMES:
        raise InvalidArgument(f"status {echo(name)} is not one of {', '.join(STATUS_NAMES)}")
    return pb.EnvStatus.Value(name.upper())
