"""What the faces show of a service: :class:`ServiceView`, one snapshot of its unit."""

from __future__ import annotations

from dataclasses import dataclass

from envplane.services.service.runtime import Usage
from envplane.services.service.units import Unit


@dataclass(frozen=True)
class ServiceView:
    name: str
    runtime: str
    state: str
    message: str
    healthy: bool | None
    probe: str  # the probe's kind ("" when none)
    probe_output: str
    pid: int
    container_id: str
    ports: tuple[str, ...]
    started_at: float  # epoch seconds (0: not running)
    restarts: int
    exit_code: int | None
    usage: Usage
    depends_on: dict[str, str]
    description: str
    image: str
    command: tuple[str, ...]
    adopted: bool


def view(unit: Unit, usage: Usage | None = None) -> ServiceView:
    definition, instance = unit.definition, unit.instance
    return ServiceView(
        name=unit.name,
        runtime=definition.runtime,
        state=unit.state.value,
        message=unit.message,
        healthy=unit.healthy,
        probe=definition.probe.kind if definition.probe else "",
        probe_output=unit.last_probe.output if unit.last_probe else "",
        pid=instance.pid if instance else 0,
        container_id=instance.container_id if instance else "",
        ports=tuple(str(p) for p in definition.ports),
        started_at=instance.started_at if instance else 0.0,
        restarts=unit.restarts,
        exit_code=unit.last_exit.code if unit.last_exit else None,
        usage=usage or Usage(),
        depends_on=dict(definition.depends_on),
        description=definition.description,
        image=definition.image,
        command=definition.command,
        adopted=unit.adopted,
    )
