"""The ``docker`` runtime: a service is a container, through the Docker SDK (``docker`` on PyPI).

Every container envplane makes is named ``envplane-<instance>-<service>`` and labelled with the
daemon's instance id, the service and its spec hash (``runtime.spec_hash``). The labels are the
record: a restarted daemon finds its containers by them (adoption needs no file), reuses one
whose hash matches and re-creates one whose definition changed (the original silently reused a
stale container). Images missing locally are pulled first, with the engine's own progress.

The SDK blocks, so each call runs on a thread; a call that waits on the container (``wait``,
followed logs) waits in short slices, so a cancelled wait leaves no thread behind for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions

from envplane.errors import EngineUnavailable, InvalidArgument, ServiceFailed
from envplane.services.service.definitions import ServiceDef
from envplane.services.service.runtime import Exit, Instance, LogLine, Say, Usage

T = TypeVar("T")
LABEL = "io.envplane"
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
WAIT_SLICE = 1  # seconds per engine wait call (a cancelled wait ends within this)


def _labels(instance_id: str, service: str, spec_hash: str) -> dict[str, str]:
    return {f"{LABEL}.instance": instance_id, f"{LABEL}.service": service, f"{LABEL}.spec-hash": spec_hash}


def _volumes(service: ServiceDef) -> dict[str, dict[str, str]]:
    volumes = {}
    for text in service.volumes:
        parts = text.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            raise InvalidArgument(f"services.{service.name}.volumes: {text!r} is not 'host:container[:ro]'")
        volumes[parts[0]] = {"bind": parts[1], "mode": parts[2] if len(parts) == 3 else "rw"}
    return volumes


def _timestamp(text: str) -> float:
    """Docker's RFC 3339 nanosecond timestamps -> epoch seconds."""
    head, _, frac = text.rstrip("Z").partition(".")
    moment = datetime.datetime.fromisoformat(head).replace(tzinfo=datetime.UTC)
    return moment.timestamp() + (float("0." + frac[:9]) if frac else 0.0)


def progress_of(event: dict[str, Any]) -> dict[str, Any]:
    """One engine pull event -> {layer, status, current, total, percent}."""
    detail = event.get("progressDetail") or {}
    current, total = int(detail.get("current") or 0), int(detail.get("total") or 0)
    return {
        "layer": str(event.get("id", "")),
        "status": str(event.get("status", "")),
        "current": current,
        "total": total,
        "percent": min(100, round(100 * current / total)) if total else (100 if "complete" in str(event) else 0),
        "error": str(event.get("error", "")),
    }


class DockerRuntime:
    name = "docker"

    def __init__(self, instance_id: str, base_url: str | None = None) -> None:
        self.instance_id = instance_id
        self.base_url = base_url
        self._client: docker.DockerClient | None = None
        self._cpu: dict[str, tuple[float, float]] = {}

    # -- the engine ------------------------------------------------------------------------------

    def _engine(self) -> docker.DockerClient:
        if self._client is None:
            client = None
            try:
                _reachable(self.base_url or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET)
                client = docker.DockerClient(base_url=self.base_url) if self.base_url else docker.from_env()
                client.ping()
            except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
                if client is not None:
                    client.close()
                where = self.base_url or "DOCKER_HOST / the default socket"
                raise EngineUnavailable(f"cannot reach the Docker engine at {where}: {exc}") from None
            self._client = client
        return self._client

    async def _call(self, fn: Callable[[docker.DockerClient], T]) -> T:
        def run() -> T:
            try:
                return fn(self._engine())
            except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
                if isinstance(exc, docker.errors.APIError | docker.errors.NotFound):
                    raise
                self._client = None
                raise EngineUnavailable(f"the Docker engine stopped answering: {exc}") from None

        return await asyncio.to_thread(run)

    def container_name(self, service: str) -> str:
        return f"envplane-{self.instance_id[:8]}-{service}"

    # -- Runtime -----------------------------------------------------------------------------------

    async def start(self, service: ServiceDef, spec_hash: str, say: Say) -> Instance:
        name = self.container_name(service.name)
        existing = await self._call(lambda c: _find(c, name))
        if existing is not None:
            labels = existing.labels
            if labels.get(f"{LABEL}.spec-hash") == spec_hash and existing.status == "running":
                await say(f"reusing container {existing.short_id} (its spec is unchanged)", -1)
                return self._instance(service.name, spec_hash, existing)
            why = "its spec changed" if labels.get(f"{LABEL}.spec-hash") != spec_hash else "it is not running"
            await say(f"re-creating container {existing.short_id}: {why}", -1)
            await self._call(lambda c: existing.remove(force=True))
        if not await self._call(lambda c: _has_image(c, service.image)):
            async for step in self.pull(service.image):
                if step["error"]:
                    raise ServiceFailed(f"cannot pull {service.image} for service {service.name!r}: {step['error']}")
                await say(f"pulling {service.image}: {step['status']} {step['layer']}".rstrip(), step["percent"])
        await say(f"creating container from {service.image}", -1)
        options: dict[str, Any] = {
            "name": name,
            "labels": _labels(self.instance_id, service.name, spec_hash),
            "detach": True,
            "environment": dict(service.env),
            "volumes": _volumes(service),
            "stop_signal": service.stop_signal,
        }
        if service.command:
            options["command"] = list(service.command)
        if service.workdir:
            options["working_dir"] = service.workdir
        if service.user:
            options["user"] = service.user
        if service.network == "host":
            options["network_mode"] = "host"
        else:
            if service.network:
                options["network"] = service.network
            options["ports"] = {f"{p.container or p.port}/tcp": (p.host, p.port) for p in service.ports}
        try:
            container = await self._call(lambda c: c.containers.run(service.image, **options))
        except docker.errors.APIError as exc:
            raise ServiceFailed(
                f"service {service.name!r}: the engine refused its container: {exc.explanation or exc}"
            ) from None
        container = await self._call(lambda c: c.containers.get(container.id))
        return self._instance(service.name, spec_hash, container)

    async def prepare(self, service: ServiceDef) -> None:
        """Nothing ahead: a pull would be the thing, and ``start`` does it with progress."""

    async def unprepare(self, name: str) -> None:
        return None

    def _instance(self, service: str, spec_hash: str, container: Any) -> Instance:
        state = container.attrs.get("State", {})
        started = state.get("StartedAt", "")
        started_at = _timestamp(started) if started and not started.startswith("0001") else time.time()
        return Instance(
            service, self.name, spec_hash, started_at, pid=int(state.get("Pid") or 0), container_id=container.id
        )

    async def wait(self, instance: Instance) -> Exit:
        def wait_slice(c: docker.DockerClient) -> dict[str, Any] | None:
            try:
                return dict(c.api.wait(instance.container_id, timeout=WAIT_SLICE))
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
                if "timed out" in str(exc):  # the slice ended: the container still runs
                    return None
                raise

        while True:
            try:
                result = await self._call(wait_slice)
            except docker.errors.NotFound:
                return Exit(None, "its container is gone")
            except EngineUnavailable:  # the engine restarts: keep watching
                await asyncio.sleep(WAIT_SLICE)
                continue
            if result is not None:
                break
        code = int(result.get("StatusCode", -1))
        oom = await self._call(lambda c: _oom_killed(c, instance.container_id))
        if oom:
            return Exit(code, f"killed: out of memory (exit code {code})")
        return Exit(code, f"exited with code {code}")

    async def stop(self, instance: Instance, signal_name: str, grace: float) -> Exit:
        def stop(c: docker.DockerClient) -> Exit:
            try:
                container = c.containers.get(instance.container_id)
            except docker.errors.NotFound:
                return Exit(None, "its container was already gone")
            container.stop(timeout=max(0, round(grace)))
            container.reload()
            code = int(container.attrs.get("State", {}).get("ExitCode", -1))
            container.remove(force=True)
            if code == 137:
                return Exit(code, f"killed by SIGKILL: still running {grace:g} s after {signal_name}")
            return Exit(code, f"exited with code {code}")

        self._cpu.pop(instance.container_id, None)
        return await self._call(stop)

    async def recorded(self) -> list[Instance]:
        def find(c: docker.DockerClient) -> list[Instance]:
            found = []
            for container in c.containers.list(all=True, filters={"label": f"{LABEL}.instance={self.instance_id}"}):
                labels = container.labels
                service = labels.get(f"{LABEL}.service", "")
                if service:
                    found.append(self._instance(service, labels.get(f"{LABEL}.spec-hash", ""), container))
            return found

        try:
            return await self._call(find)
        except EngineUnavailable:
            return []  # no engine: nothing to adopt (and nothing of ours can be running)

    async def adopt(self, instance: Instance, service: ServiceDef, spec_hash: str) -> bool:
        def running(c: docker.DockerClient) -> bool:
            try:
                container = c.containers.get(instance.container_id)
            except docker.errors.NotFound:
                return False
            return container.status == "running" and container.labels.get(f"{LABEL}.spec-hash") == spec_hash

        return instance.spec_hash == spec_hash and await self._call(running)

    async def discard(self, instance: Instance) -> None:
        def remove(c: docker.DockerClient) -> None:
            with contextlib.suppress(docker.errors.NotFound):
                c.containers.get(instance.container_id).remove(force=True)

        await self._call(remove)

    async def usage(self, instance: Instance) -> Usage:
        def stats(c: docker.DockerClient) -> Usage:
            try:
                data = c.api.stats(instance.container_id, stream=False)
            except docker.errors.NotFound:
                return Usage()
            cpu = data.get("cpu_stats", {})
            pre = data.get("precpu_stats", {})
            total = float(cpu.get("cpu_usage", {}).get("total_usage", 0))
            system = float(cpu.get("system_cpu_usage", 0))
            pre_total = float(pre.get("cpu_usage", {}).get("total_usage", 0))
            pre_system = float(pre.get("system_cpu_usage", 0))
            cores = int(cpu.get("online_cpus") or 1)
            percent = 0.0
            if system > pre_system and pre_system:
                percent = 100.0 * cores * (total - pre_total) / (system - pre_system)
            memory = data.get("memory_stats", {})
            used = int(memory.get("usage", 0)) - int(memory.get("stats", {}).get("cache", 0))
            networks = data.get("networks") or {}
            rx = sum(int(n.get("rx_bytes", 0)) for n in networks.values())
            tx = sum(int(n.get("tx_bytes", 0)) for n in networks.values())
            return Usage(round(max(percent, 0.0), 1), max(used, 0), rx, tx)

        return await self._call(stats)

    async def logs(
        self, service: str, instance: Instance | None, *, tail: int, since: float, follow: bool
    ) -> AsyncIterator[LogLine]:
        target = instance.container_id if instance else self.container_name(service)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[LogLine | None] = asyncio.Queue()
        streams: list[Any] = []
        stop = threading.Event()

        def pump(stdout: bool) -> None:
            try:
                stream = self._engine().api.logs(
                    target,
                    stdout=stdout,
                    stderr=not stdout,
                    timestamps=True,
                    stream=True,
                    follow=follow,
                    tail=tail if tail > 0 else "all",
                    since=int(since) if since else None,
                )
                streams.append(stream)
                for raw in _lines(stream):
                    if stop.is_set():
                        break
                    stamp, _, text = raw.partition(" ")
                    line = LogLine(_timestamp(stamp), "stdout" if stdout else "stderr", text)
                    if line.timestamp >= since:
                        loop.call_soon_threadsafe(queue.put_nowait, line)
            except (docker.errors.DockerException, requests.exceptions.RequestException, ValueError):
                pass
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        pumps = [threading.Thread(target=pump, args=(flag,), daemon=True) for flag in (True, False)]
        for thread in pumps:
            thread.start()

        async def both() -> AsyncIterator[LogLine]:  # until both streams have ended
            ended = 0
            while ended < 2:
                item = await queue.get()
                if item is None:
                    ended += 1
                else:
                    yield item

        try:
            if follow:
                async for line in both():
                    yield line
                return
            lines = sorted([line async for line in both()], key=lambda line: line.timestamp)  # merged by time
            for line in lines[-tail:] if tail > 0 else lines:
                yield line
        finally:
            stop.set()
            for stream in streams:
                with contextlib.suppress(Exception):
                    stream.close()

    async def pull(self, image: str) -> AsyncIterator[dict[str, Any]]:
        """The engine's real pull progress, one dict per event (``progress_of``)."""
        repository, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | BaseException | None] = asyncio.Queue()

        def pump() -> None:
            try:
                for event in self._engine().api.pull(repository, tag or "latest", stream=True, decode=True):
                    loop.call_soon_threadsafe(queue.put_nowait, progress_of(event))
            except docker.errors.APIError as exc:
                failure = progress_of({"status": "failed", "error": exc.explanation or str(exc)})
                loop.call_soon_threadsafe(queue.put_nowait, failure)
            except BaseException as exc:  # handed to the caller, raised there
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        threading.Thread(target=pump, daemon=True).start()
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                if isinstance(item, EngineUnavailable):
                    raise item
                raise EngineUnavailable(f"pulling {image}: {item}")
            yield item

    def health(self) -> dict[str, Any]:
        try:
            version = self._engine().version()
            return {
                "ok": True,
                "engine": f"Docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')})",
            }
        except EngineUnavailable as exc:
            return {"ok": False, "error": exc.message}
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            self._client = None
            return {"ok": False, "error": f"the Docker engine does not answer: {exc}"}

    async def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None


def _reachable(url: str) -> None:
    """Fail fast, with no half-made client, when nothing listens on the engine's socket (the
    SDK connects inside its constructor to learn the API version, and leaks that socket when
    the connection fails)."""
    if url.startswith("unix://"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(url.removeprefix("unix://"))
    elif url.startswith(("tcp://", "http://", "https://")):
        host, _, port = url.split("://", 1)[1].split("/", 1)[0].rpartition(":")
        with socket.create_connection((host or "127.0.0.1", int(port or 2375)), timeout=2):
            pass


def _find(client: docker.DockerClient, name: str) -> Any:
    try:
        return client.containers.get(name)
    except docker.errors.NotFound:
        return None


def _has_image(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
        return True
    except docker.errors.ImageNotFound:
        return False


def _oom_killed(client: docker.DockerClient, container_id: str) -> bool:
    try:
        return bool(client.api.inspect_container(container_id).get("State", {}).get("OOMKilled"))
    except docker.errors.NotFound:
        return False


def _lines(stream: Iterator[bytes]) -> Iterator[str]:
    """The engine's chunks -> whole lines."""
    partial = b""
    for chunk in stream:
        partial += chunk
        *complete, partial = partial.split(b"\n")
        for raw in complete:
            yield raw.decode(errors="replace").rstrip("\r")
    if partial:
        yield partial.decode(errors="replace")
