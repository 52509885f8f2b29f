"""The domain events of the services capability (subject kind ``service``, id the service name).

Every state a service reaches that a user acts on is an event: started, healthy, unhealthy,
exited, failed, skipped, restarted, stopped. Probes are not (they are counted in the metrics):
a probe every 500 ms must not flood the event log; only a change of health is.
"""

from __future__ import annotations

from enum import StrEnum

from envplane.core.subject import Subject

SERVICE = "service"


class EventType(StrEnum):
    SERVICE_STARTED = "ServiceStarted"
    SERVICE_HEALTH_CHANGED = "ServiceHealthChanged"
    SERVICE_EXITED = "ServiceExited"
    SERVICE_FAILED = "ServiceFailed"
    SERVICE_SKIPPED = "ServiceSkipped"
    SERVICE_RESTARTED = "ServiceRestarted"
    SERVICE_STOPPED = "ServiceStopped"
    SERVICE_ADOPTED = "ServiceAdopted"


def subject(name: str = "") -> Subject:
    return Subject(SERVICE, name)
