"""The manager: services started in dependency order, stopped in reverse, watched, adopted.

``up`` pulls in every transitive dependency and starts each service the moment its own
dependencies meet their conditions (not wave by wave: a slow branch does not hold up a fast
one), at most ``parallel`` starts at a time. It streams each change as it happens, and fails
(``ServiceFailed``, with the failing probe's last output) when ``wait`` is asked for and
something does not get healthy within the timeout, or fails, or is skipped.

``down`` stops what depends on a service before the service, reverse wave by wave; with no
names, everything. ``adopt`` is the start of a daemon: what a previous one left running at the
same spec, and healthy, is taken over; the rest is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from envplane.errors import InvalidArgument, NotFound, ServiceFailed
from envplane.services.service import lifecycle, probes
from envplane.services.service.definitions import ServiceDef
from envplane.services.service.probes import ProbeResult
from envplane.services.service.registry import Registry
from envplane.services.service.runtime import Exit, Instance, Runtime, spec_hash
from envplane.services.service.units import ACTIVE, ENDED, UP, Change, State, Unit

logger = logging.getLogger("envplane.services")
LOG_TAIL_LINES = 20
START_WAIT = 30.0  # seconds a stop waits for a start in flight to finish


class Observer(Protocol):
    """What the daemon is told (audit, events, metrics); every method is quick and never raises."""

    def changed(self, unit: Unit, change: Change) -> None: ...

    def started(self, unit: Unit) -> None: ...

    def restarting(self, unit: Unit, cause: str) -> None: ...

    def stopped(self, unit: Unit, exit_: Exit | None) -> None: ...

    def probed(self, unit: Unit, result: ProbeResult) -> None: ...


class Manager:
    def __init__(
        self,
        registry: Registry,
        runtimes: Mapping[str, Runtime],
        observer: Observer,
        *,
        run_dir: Path,
        parallel: int = 8,
    ) -> None:
        self.registry = registry
        self.runtimes = runtimes
        self.observer = observer
        self.run_dir = run_dir
        self.slots = asyncio.Semaphore(parallel)
        self.units: dict[str, Unit] = {}
        self._tick = asyncio.Event()
        self._listeners: set[asyncio.Queue[Change]] = set()

    # -- the units ---------------------------------------------------------------------------

    def unit(self, name: str) -> Unit:
        definition = self.registry[name]
        unit = self.units.get(name)
        if unit is None:
            unit = self.units[name] = Unit(definition, self.runtime(definition.runtime), spec_hash(definition))
        return unit

    def runtime(self, name: str) -> Runtime:
        try:
            return self.runtimes[name]
        except KeyError:
            raise InvalidArgument(f"the {name} runtime is not available on this daemon") from None

    def known(self, names: Iterable[str]) -> list[str]:
        """``names`` checked (each a defined service), or every defined service."""
        names = list(names)
        for name in names:
            if name not in self.registry.services:
                known = ", ".join(sorted(self.registry.services))
                raise NotFound(f"no service named {name!r} (services: {known})")
        return names or self.registry.order()

    # -- lifecycle.Hooks -----------------------------------------------------------------------

    def set_state(self, unit: Unit, state: State, message: str, *, output: str = "") -> None:
        unit.state, unit.message = state, message
        change = Change(unit.name, state, message, unit.healthy, output or unit.failure_output())
        self._notify(unit, change)

    def _notify(self, unit: Unit, change: Change) -> None:
        for queue in list(self._listeners):
            queue.put_nowait(change)
        self.observer.changed(unit, change)
        self._tick.set()
        self._tick = asyncio.Event()

    async def changed(self) -> None:
        """Until the next change of any unit."""
        await self._tick.wait()

    async def dependencies(self, unit: Unit) -> None:
        deps = unit.definition.depends_on
        while True:
            waiting = []
            for name, condition in deps.items():
                dep = self.units[name]
                if dep.satisfies(condition):
                    continue
                why = dep.cannot_satisfy()
                if why is not None and dep.definition.required:
                    raise lifecycle.Skipped(f"skipped: dependency {why}")
                if why is None:
                    waiting.append(f"{name} ({condition})")
            if not waiting:
                return
            message = "waiting for " + ", ".join(waiting)
            if unit.state != State.WAITING or unit.message != message:
                self.set_state(unit, State.WAITING, message)
            await self.changed()

    def started(self, unit: Unit) -> None:
        self.observer.started(unit)

    def restarting(self, unit: Unit, cause: str) -> None:
        self.observer.restarting(unit, cause)

    def health(self, unit: Unit, healthy: bool, result: ProbeResult) -> None:
        unit.healthy = healthy
        if unit.state in UP:
            word = "healthy" if healthy else "unhealthy"
            self.set_state(unit, State.HEALTHY if healthy else State.UNHEALTHY, f"{word}: {_first_line(result.output)}")

    def probed(self, unit: Unit, result: ProbeResult) -> None:
        self.observer.probed(unit, result)

    async def log_tail(self, unit: Unit) -> str:
        lines = []
        with contextlib.suppress(Exception):
            async for line in unit.runtime.logs(unit.name, None, tail=LOG_TAIL_LINES, since=0, follow=False):
                lines.append(f"{line.stream}: {line.text}")
        return "\n".join(lines)

    # -- operations ----------------------------------------------------------------------------

    def _launch(self, unit: Unit, *, adopted: bool = False) -> None:
        unit.stopping = False
        if not adopted:  # at once, not when the task first runs: an `up` must not see the last run's end
            self.set_state(unit, State.WAITING, "about to start")
        unit.task = asyncio.create_task(lifecycle.run(unit, self, adopted=adopted), name=f"service:{unit.name}")

    def _settled(self, unit: Unit, wait: bool) -> bool:
        if unit.state in ENDED or unit.state == State.EXITED:
            return True
        if not wait:
            return unit.state in UP
        return unit.satisfies("healthy")

    async def up(
        self,
        names: Sequence[str],
        *,
        wait: bool,
        timeout: float,
        definitions: Mapping[str, ServiceDef] | None = None,
        serial: bool = False,
    ) -> AsyncIterator[Change]:
        """Start ``names`` and their dependencies; yields each one's state now, then each change
        until all have settled (started; with ``wait``, healthy). Raises ``ServiceFailed`` at the
        end if, with ``wait``, one failed, was skipped or is not healthy after ``timeout``.

        ``definitions`` replaces some services' definitions for this start (the compat face's
        overrides): one that runs with another spec is stopped and started again with it, like
        any service whose definition changed. ``serial`` starts one service at a time, each
        once the one before has settled (the original protocol's ``parallel = false``)."""
        order = self.registry.closure(self.known(names))
        units = [self.unit(name) for name in order]
        wanted = {unit.name for unit in units}
        deadline = time.monotonic() + timeout
        with self.subscribe() as queue:
            for unit in units:
                definition = (definitions or {}).get(unit.name, unit.definition)
                if unit.state in ACTIVE and spec_hash(definition) != unit.spec_hash:
                    await self.stop_unit(unit, None)
                if unit.state in ACTIVE:
                    yield Change(unit.name, unit.state, unit.message, unit.healthy, unit.failure_output())
                    continue
                unit.definition, unit.spec_hash = definition, spec_hash(definition)
                unit.runtime = self.runtime(definition.runtime)
                unit.streak, unit.last_probe, unit.healthy, unit.adopted = 0, None, None, False
                self._launch(unit)
                if serial:
                    async for change in self._follow(queue, wanted, [unit], wait, deadline):
                        yield change
            async for change in self._follow(queue, wanted, units, wait, deadline):
                yield change
        if wait:
            self._check(units, timeout)

    async def _follow(
        self, queue: asyncio.Queue[Change], wanted: set[str], units: list[Unit], wait: bool, deadline: float
    ) -> AsyncIterator[Change]:
        """The changes of ``wanted`` until every one of ``units`` has settled, or the deadline."""
        while True:
            while not queue.empty():
                change = queue.get_nowait()
                if change.service in wanted:
                    yield change
            left = deadline - time.monotonic()
            if left <= 0 or all(self._settled(unit, wait) for unit in units):
                return
            try:  # (never yield inside the timeout: it would cancel the consumer, not this wait)
                async with asyncio.timeout(left):
                    change = await queue.get()
            except TimeoutError:
                continue
            if change.service in wanted:
                yield change

    def _check(self, units: list[Unit], timeout: float) -> None:
        bad = [u for u in units if u.state in ENDED or not (u.satisfies("healthy") or u.state == State.EXITED)]
        if not bad:
            return
        lines = []
        for unit in bad:
            if unit.state in ENDED:
                lines.append(f"{unit.name}: {unit.state.value}: {unit.message}")
            else:
                lines.append(f"{unit.name}: not healthy after {timeout:g} s ({unit.state.value}: {unit.message})")
            output = unit.failure_output()
            if output:
                lines.append("  last probe output: " + output.strip().replace("\n", "\n    "))
        first = bad[0]
        headline = f"{len(bad)} service(s) did not get healthy: " + ", ".join(u.name for u in bad)
        if len(bad) == 1:
            headline = f"service {first.name!r} did not get healthy"
        raise ServiceFailed(headline, detail="\n".join(lines))

    async def down(self, names: Sequence[str] = (), *, timeout: float | None = None) -> dict[str, str]:
        """Stop ``names`` (and what depends on them first), or everything; per service what
        happened, in the order it happened."""
        if names:
            targets = set(self.known(names))
            for name in list(targets):
                targets.update(d for d in self.registry.dependents(name) if self._running(d))
        else:
            targets = {name for name in self.units if self._running(name)}
        results: dict[str, str] = {}
        for wave in reversed(self.registry.waves(targets)):
            outcomes = await asyncio.gather(*(self.stop_unit(self.unit(name), timeout) for name in wave))
            results.update(zip(wave, outcomes, strict=True))
        return results

    def _running(self, name: str) -> bool:
        unit = self.units.get(name)
        return unit is not None and (unit.state in ACTIVE or unit.instance is not None)

    async def stop_unit(self, unit: Unit, timeout: float | None) -> str:
        if unit.state not in ACTIVE and unit.instance is None:
            return f"was not running ({unit.state.value})"
        unit.stopping = True
        # Never cut a start in half (its instance would be lost), but never wait on one for
        # ever either (a pull that hangs): past the bound, the start is cancelled.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(START_WAIT):
                while unit.state == State.STARTING:
                    await self.changed()
        instance = unit.instance
        self.set_state(unit, State.STOPPING, "stopping")
        exit_: Exit | None = None
        try:
            if instance is not None:
                grace = unit.definition.stop_grace if timeout is None else timeout
                exit_ = await unit.runtime.stop(instance, unit.definition.stop_signal, grace)
        finally:
            if unit.task is not None:
                unit.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await unit.task
                unit.task = None
            unit.instance, unit.healthy = None, None
            unit.last_exit = exit_ or unit.last_exit
            message = f"stopped: {exit_.reason}" if exit_ else "stopped before it started"
            self.set_state(unit, State.STOPPED, message)
            self.observer.stopped(unit, exit_)
        return message

    async def restart(self, name: str, *, timeout: float | None, wait_timeout: float) -> Unit:
        unit = self.unit(self.known([name])[0])
        await self.stop_unit(unit, timeout)
        unit.streak = 0
        unit.restarts += 1
        self.observer.restarting(unit, "requested")
        async for _ in self.up([name], wait=True, timeout=wait_timeout):
            pass
        return self.units[name]

    async def adopt(self) -> tuple[list[str], list[str]]:
        """What a previous daemon left: adopted when still running at the same spec and healthy;
        otherwise removed. Returns (adopted, removed)."""
        adopted: list[str] = []
        removed: list[str] = []
        for runtime in self.runtimes.values():
            for instance in await runtime.recorded():
                definition = self.registry.services.get(instance.service)
                why = (
                    "no longer defined" if definition is None else await self._adoptable(runtime, instance, definition)
                )
                if why is not None or definition is None:
                    logger.info("not adopting %s: %s", instance.service, why)
                    await runtime.discard(instance)
                    removed.append(instance.service)
                    continue
                unit = self.unit(definition.name)
                unit.instance, unit.adopted = instance, True
                unit.healthy = True if definition.probe is not None else None
                self.set_state(
                    unit, State.HEALTHY if definition.probe else State.RUNNING, "adopted from the previous daemon"
                )
                self._launch(unit, adopted=True)
                adopted.append(definition.name)
        return adopted, removed

    async def _adoptable(self, runtime: Runtime, instance: Instance, definition: ServiceDef) -> str | None:
        """Why ``instance`` is not taken over (None: it is)."""
        if definition.runtime != runtime.name:
            return f"now a {definition.runtime} service"
        if not await runtime.adopt(instance, definition, spec_hash(definition)):
            return "not running, or its definition changed"
        if definition.probe is not None:
            port = definition.ports[0].port if definition.ports else 0
            result = await probes.probe(definition.probe, default_port=port, run_dir=self.run_dir)
            if not result.healthy:
                return f"unhealthy: {result.output}"
        return None

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[Change]]:
        """A queue of every change from now on, while the context lasts."""
        queue: asyncio.Queue[Change] = asyncio.Queue()
        self._listeners.add(queue)
        try:
            yield queue
        finally:
            self._listeners.discard(queue)

    async def close(self, *, stop_services: bool) -> None:
        if stop_services:
            await self.down()
        for unit in self.units.values():
            for task in (unit.probe_task, unit.task):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
        for runtime in self.runtimes.values():
            await runtime.close()


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else ""
