"""Views of the services capability -> ``envplane.v1`` messages."""

from __future__ import annotations

from envplane.services.service.runtime import LogLine
from envplane.services.service.services_service import HealthUpdate
from envplane.services.service.units import Change
from envplane.services.service.views import ServiceView
from envplane.v1 import services_pb2 as pb


def service(view: ServiceView) -> pb.Service:
    return pb.Service(
        name=view.name,
        runtime=view.runtime,
        state=view.state,
        message=view.message,
        has_health=view.healthy is not None,
        healthy=bool(view.healthy),
        probe=view.probe,
        probe_output=view.probe_output,
        pid=view.pid,
        container_id=view.container_id,
        ports=list(view.ports),
        started_at=view.started_at,
        restarts=view.restarts,
        has_exit_code=view.exit_code is not None,
        exit_code=view.exit_code or 0,
        cpu_percent=view.usage.cpu_percent,
        memory_bytes=view.usage.memory_bytes,
        network_rx_bytes=view.usage.network_rx_bytes,
        network_tx_bytes=view.usage.network_tx_bytes,
        depends_on=view.depends_on,
        description=view.description,
        image=view.image,
        command=list(view.command),
        adopted=view.adopted,
    )


def progress(change: Change) -> pb.ServiceProgress:
    return pb.ServiceProgress(
        service=change.service,
        state=change.state.value,
        message=change.message,
        progress=change.progress,
        output=change.output,
        timestamp=change.timestamp,
    )


def health(update: HealthUpdate) -> pb.HealthUpdate:
    return pb.HealthUpdate(
        service=update.service,
        healthy=update.healthy,
        state=update.state,
        message=update.message,
        output=update.output,
        timestamp=update.timestamp,
        heartbeat=update.heartbeat,
    )


def log_line(service: str, container_id: str, line: LogLine) -> pb.ServiceLogLine:
    return pb.ServiceLogLine(
        service=service, stream=line.stream, text=line.text, timestamp=line.timestamp, container_id=container_id
    )
