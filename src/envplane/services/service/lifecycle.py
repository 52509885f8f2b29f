"""The life of one unit, as one task: wait for its dependencies, start, watch it end, restart by
its policy; and, beside it while it runs, its probe on schedule.

Restart backoff doubles per restart in a row, is capped at ``max_backoff`` and spread by
±``jitter`` so services that fail together do not come back together; a run that lasted
:data:`GOOD_RUN` counts as recovered (the streak starts again). A command that cannot start at
all (not found, not executable) fails at once: restarting it cannot help.

Health follows Docker's meaning with a faster start: until the first success the probe runs
every :data:`START_INTERVAL` (so an ``up`` sees readiness within ~10 ms, not a whole interval
later; 100 ms for an exec probe), failures inside ``start_period`` do not count, and a service that never answered is
unhealthy once ``start_period + retries × interval`` has passed; after that, ``retries``
failures in a row make it unhealthy and one success makes it healthy again. Unhealthy never
tears anything down: a dependent survives its dependency's transient readiness loss.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from pathlib import Path
from typing import Protocol

from envplane.errors import EnvplaneError, ServiceFailed
from envplane.services.service import probes
from envplane.services.service.probes import ProbeResult
from envplane.services.service.runtime import Exit
from envplane.services.service.units import State, Unit

logger = logging.getLogger("envplane.services")
GOOD_RUN = 10.0  # seconds up after which a restart streak starts over
START_INTERVAL = 0.01  # seconds between network probes until the first success (a refused connect is cheap)
START_INTERVAL_EXEC = 0.1  # an exec probe is a process each time: not 50 a second


class Skipped(Exception):
    """A required dependency failed: the unit is not started."""


class Hooks(Protocol):
    """What the life task needs from its manager."""

    slots: asyncio.Semaphore  # bounds the starts in flight
    run_dir: Path

    def set_state(self, unit: Unit, state: State, message: str, *, output: str = "") -> None: ...

    async def dependencies(self, unit: Unit) -> None:
        """Until every dependency meets its condition; ``Skipped`` when a required one failed."""
        ...

    def started(self, unit: Unit) -> None: ...

    def restarting(self, unit: Unit, cause: str) -> None: ...

    def health(self, unit: Unit, healthy: bool, result: ProbeResult) -> None: ...

    def probed(self, unit: Unit, result: ProbeResult) -> None: ...

    async def log_tail(self, unit: Unit) -> str: ...


def backoff(unit: Unit) -> float:
    policy = unit.definition.restart
    delay = min(policy.backoff * (2.0**unit.streak), policy.max_backoff)
    spread: float = random.uniform(1 - policy.jitter, 1 + policy.jitter)
    return max(0.0, delay * spread)


def restart_after(unit: Unit, exit_: Exit) -> tuple[float, str] | None:
    """The delay before the next start and its cause, or None: not restarted."""
    policy = unit.definition.restart
    if policy.policy == "no" or (policy.policy == "on-failure" and exit_.success):
        return None
    if policy.max_restarts and unit.streak >= policy.max_restarts:
        return None
    return backoff(unit), "exited" if exit_.success else "crashed"


async def run(unit: Unit, hooks: Hooks, *, adopted: bool = False) -> None:
    prepared = False
    try:
        if not adopted:
            if unit.definition.depends_on:  # start what can start ahead while they get ready
                await unit.runtime.prepare(unit.definition)
                prepared = True
            await hooks.dependencies(unit)
        while True:
            if not adopted:
                hooks.set_state(unit, State.STARTING, f"starting ({unit.definition.runtime})")
                async with hooks.slots:

                    async def say(message: str, _percent: int) -> None:
                        hooks.set_state(unit, State.STARTING, message)

                    prepared = False
                    unit.instance = await unit.runtime.start(unit.definition, unit.spec_hash, say)
                unit.healthy, unit.last_probe = None, None
                hooks.set_state(unit, State.RUNNING, _running(unit))
                hooks.started(unit)
            adopted = False
            began = time.monotonic()
            instance = unit.instance
            assert instance is not None
            if unit.definition.probe is not None:
                unit.probe_task = asyncio.create_task(watch_health(unit, hooks), name=f"probe:{unit.name}")
            try:
                exit_ = await unit.runtime.wait(instance)
            finally:
                if unit.probe_task is not None:
                    unit.probe_task.cancel()
                    unit.probe_task = None
            if unit.stopping:
                return
            unit.instance, unit.last_exit, unit.healthy = None, exit_, None
            if time.monotonic() - began >= GOOD_RUN:
                unit.streak = 0
            plan = restart_after(unit, exit_)
            if plan is None:
                final = State.EXITED if exit_.success else State.FAILED
                hooks.set_state(unit, final, exit_.reason, output=await hooks.log_tail(unit))
                return
            delay, cause = plan
            limit = unit.definition.restart.max_restarts
            count = f"restart {unit.streak + 1} of {limit}" if limit else f"restart {unit.streak + 1}"
            hooks.set_state(unit, State.RESTARTING, f"{exit_.reason}; restarting in {delay:.2f} s ({count})")
            await asyncio.sleep(delay)
            unit.restarts += 1
            unit.streak += 1
            hooks.restarting(unit, cause)
    except Skipped as skipped:
        hooks.set_state(unit, State.SKIPPED, str(skipped))
    except ServiceFailed as failed:
        hooks.set_state(unit, State.FAILED, failed.message, output=failed.detail or await hooks.log_tail(unit))
    except EnvplaneError as failed:  # the engine unreachable, a bad volume: the unit fails, saying why
        hooks.set_state(unit, State.FAILED, failed.message, output=failed.detail)
    except Exception as exc:  # a bug must not leave the unit "starting" forever
        logger.exception("service %s: unexpected failure", unit.name)
        hooks.set_state(unit, State.FAILED, f"internal error: {type(exc).__name__}: {exc}")
    finally:
        if prepared:  # skipped, cancelled or failed before its start: call the warm start off
            await asyncio.shield(unit.runtime.unprepare(unit.name))


def _running(unit: Unit) -> str:
    instance = unit.instance
    assert instance is not None
    where = f"pid {instance.pid}" if not instance.container_id else f"container {instance.container_id[:12]}"
    ports = ", ".join(str(p) for p in unit.definition.ports)
    return f"running ({where}{'; ' + ports if ports else ''})"


async def watch_health(unit: Unit, hooks: Hooks) -> None:
    spec = unit.definition.probe
    assert spec is not None
    default_port = unit.definition.ports[0].port if unit.definition.ports else 0
    began = time.monotonic()
    failures = 0
    answered = False
    while True:
        result = await probes.probe(spec, default_port=default_port, run_dir=hooks.run_dir)
        unit.last_probe = result
        hooks.probed(unit, result)
        if result.healthy:
            failures, answered = 0, True
            if unit.healthy is not True:
                hooks.health(unit, True, result)
        else:
            elapsed = time.monotonic() - began
            if answered or elapsed >= spec.start_period:
                failures += 1
            gave_up = (
                failures >= spec.retries if answered else elapsed >= spec.start_period + spec.retries * spec.interval
            )
            if gave_up and unit.healthy is not False:
                hooks.health(unit, False, result)
        fast = START_INTERVAL_EXEC if spec.kind == "exec" else START_INTERVAL
        await asyncio.sleep(spec.interval if answered else min(spec.interval, fast))
