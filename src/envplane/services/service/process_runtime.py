"""The ``process`` runtime: a service is a local command under its shim (``shim.py``).

Each service has a folder, ``<data dir>/services/<name>/``: the shim's ``spec.json``, the
``pid`` and ``exit`` files it writes, ``service.log`` and its rotated copies, and whatever the
service keeps there (it is the service's work dir and ``${SERVICE_DIR}`` unless it names
another). The shim leads a process group in a session of its own, so the service survives the
daemon, and signals for the service never reach the daemon's group.

An end is seen the moment it happens, with no polling: a pidfd (``os.pidfd_open``) on the
service's pid becomes readable when it exits, whether the daemon started it or adopted it.
A pid is only ever signalled after its start time is checked against the one recorded, so a
pid the kernel has since given to another process is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import psutil

from envplane.core.files import write_atomic
from envplane.core.processes import DAEMON_ONLY_VARIABLES
from envplane.errors import ServiceFailed
from envplane.services.service import logfiles, shim
from envplane.services.service.definitions import ServiceDef
from envplane.services.service.runtime import Exit, Instance, LogLine, Say, Usage

START_TIMEOUT = 10.0  # the shim writes pid (or exit) within this
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 3
USER_SERVICES_ROOT = Path("/var/lib/envplane")


def expand(text: str, variables: dict[str, str]) -> str:
    """``${SERVICE_DIR}`` and ``${DATA_DIR}`` in a command, a variable or the work dir."""
    for name, value in variables.items():
        text = text.replace("${" + name + "}", value)
    return text


async def _exited(pid: int) -> None:
    """Until ``pid`` exits: its pidfd turns readable (it need not be our child)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def _same(pid: int, started: str) -> bool:
    """``pid`` is still the process that started at ``started`` and has not ended (a zombie,
    ended but not yet collected by its parent, has ended)."""
    if pid <= 0 or not started:
        return False
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return False
    return fields[0] not in ("Z", "X") and fields[19] == started


class ProcessRuntime:
    name = "process"

    def __init__(
        self,
        services_dir: Path,
        data_dir: Path,
        instance_id: str = "",
        *,
        log_max_bytes: int = LOG_MAX_BYTES,
        log_backups: int = LOG_BACKUPS,
    ) -> None:
        self.root = services_dir
        self.data_dir = data_dir
        self.instance_id = instance_id
        self.log_max_bytes = log_max_bytes
        self.log_backups = log_backups
        self._warm: dict[str, IO[bytes]] = {}  # shims started ahead, waiting for their spec
        self._samples: dict[int, psutil.Process] = {}

    def folder(self, name: str) -> Path:
        return self.root / name

    def work_dir(self, service: ServiceDef) -> Path:
        """The service's own folder (``${SERVICE_DIR}``): beside its shim's files, or, for a
        service that runs as another user under a root daemon, under ``/var/lib/envplane``
        (the data dir's parents are usually private to root: that user could not reach it)."""
        if service.user and os.geteuid() == 0:
            return USER_SERVICES_ROOT / (self.instance_id or "default") / service.name
        return self.folder(service.name)

    def _spec(self, service: ServiceDef, folder: Path) -> dict[str, Any]:
        folder = self.work_dir(service)
        variables = {"SERVICE_DIR": str(folder), "DATA_DIR": str(self.data_dir)}
        base = {k: v for k, v in os.environ.items() if not k.startswith((*DAEMON_ONLY_VARIABLES, "ENVPLANE_"))}
        env = {**base, **{k: expand(v, variables) for k, v in service.env.items()}, "SERVICE_DIR": str(folder)}
        return {
            "command": [expand(arg, variables) for arg in service.command],
            "env": env,
            "workdir": expand(service.workdir, variables) if service.workdir else str(folder),
            "user": service.user if os.geteuid() == 0 else "",  # not root: services run as the daemon's user
            "log_max_bytes": self.log_max_bytes,
            "log_backups": self.log_backups,
        }

    async def start(self, service: ServiceDef, spec_hash: str, say: Say) -> Instance:
        folder = self.folder(service.name)
        folder.mkdir(parents=True, exist_ok=True)
        if service.user and os.geteuid() == 0:
            try:
                entry = pwd.getpwnam(service.user)
            except KeyError:
                raise ServiceFailed(
                    f"service {service.name!r} runs as user {service.user!r}, who does not exist"
                ) from None
            work = self.work_dir(service)
            work.mkdir(parents=True, exist_ok=True)
            os.chown(work, entry.pw_uid, entry.pw_gid)
        for stale in ("pid", "exit"):
            (folder / stale).unlink(missing_ok=True)
        spec = json.dumps(self._spec(service, folder))
        (folder / "spec.json").write_text(spec)  # what was started, for people
        await say(f"starting {' '.join(service.command)[:200]}", -1)
        started_at = time.time()
        warm = self._warm.pop(service.name, None)
        if warm is None:
            warm = self._spawn(folder)
        try:
            warm.write(spec.encode())
            warm.close()
        except BrokenPipeError:  # a warm shim that died meanwhile: start a cold one
            warm = self._spawn(folder)
            warm.write(spec.encode())
            warm.close()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            pid_file, exit_file = folder / "pid", folder / "exit"
            if exit_file.exists() and not pid_file.exists():
                why = exit_file.read_text().strip().removeprefix("error ")
                raise ServiceFailed(f"service {service.name!r} did not start: {why}")
            if pid_file.exists():
                pid_text, pid_started, group_text, group_started = [*pid_file.read_text().split(), "", "", ""][:4]
                pid, group = int(pid_text), int(group_text or 0)
                instance = Instance(
                    service.name,
                    self.name,
                    spec_hash,
                    started_at,
                    pid=pid,
                    pid_started=pid_started,
                    group=group,
                    group_started=group_started,
                )
                write_atomic(folder / "instance.json", instance.to_json())
                return instance
            if time.monotonic() > deadline:
                tail = (folder / "shim.log").read_text(errors="replace")[-2000:]
                raise ServiceFailed(f"service {service.name!r} did not start: its shim failed", detail=tail)
            await asyncio.sleep(0.002)

    def _spawn(self, folder: Path) -> IO[bytes]:
        """A shim, detached, waiting for its spec on the pipe returned."""
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "shim.log", "ab") as shim_log:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", shim.__file__, str(folder)],  # no site: stdlib only
                stdin=subprocess.PIPE,
                stdout=shim_log,
                stderr=shim_log,
                close_fds=True,
            )
        # Its first half exits once the second has forked away (shim.detach): reap it then.
        reaper = threading.Thread(target=proc.wait, daemon=True)
        reaper.start()
        assert proc.stdin is not None
        return proc.stdin

    async def prepare(self, service: ServiceDef) -> None:
        """Start the service's shim ahead, while its dependencies get ready: the interpreter's
        start-up is then off the chain's critical path."""
        if service.name not in self._warm:
            self._warm[service.name] = await asyncio.to_thread(self._spawn, self.folder(service.name))

    async def unprepare(self, name: str) -> None:
        """The start was called off: the warm shim reads EOF and exits."""
        warm = self._warm.pop(name, None)
        if warm is not None:
            with contextlib.suppress(OSError):
                warm.close()

    async def wait(self, instance: Instance) -> Exit:
        if _same(instance.pid, instance.pid_started):
            await _exited(instance.pid)
        # The shim writes the code a moment after the service ends (once the pipes are read).
        exit_file = self.folder(instance.service) / "exit"
        for _ in range(500):  # ~1 s
            if exit_file.exists() or not _same(instance.group, instance.group_started):
                break
            await asyncio.sleep(0.002)
        return self._exit(exit_file)

    def _exit(self, exit_file: Path) -> Exit:
        try:
            text = exit_file.read_text().strip()
        except OSError:
            return Exit(None, "exited (its exit code was not recorded)")
        if text.startswith("error "):
            return Exit(127, text.removeprefix("error "))
        code = int(text)
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return Exit(128 - code, f"killed by {name}")
        return Exit(code, f"exited with code {code}")

    async def stop(self, instance: Instance, signal_name: str, grace: float) -> Exit:
        if _same(instance.pid, instance.pid_started):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(instance.pid, signal.Signals[signal_name])
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await _exited(instance.pid)
        exit_ = self._exit(self.folder(instance.service) / "exit")
        if _same(instance.pid, instance.pid_started):
            exit_ = Exit(137, f"killed by SIGKILL: still running {grace:g} s after {signal_name}")
        elif exit_.code is None:
            exit_ = await self.wait(instance)
        self._kill_group(instance)
        with contextlib.suppress(TimeoutError):  # SIGKILL is delivered, not instant: see it land
            async with asyncio.timeout(2):
                await _exited(instance.pid)
        self._samples.pop(instance.pid, None)
        (self.folder(instance.service) / "instance.json").unlink(missing_ok=True)
        return exit_

    def _kill_group(self, instance: Instance) -> None:
        """SIGKILL what is left in the group (grandchildren, the shim): only while its leader is
        still the shim recorded, or, with the shim gone, while the service itself still is."""
        if _same(instance.group, instance.group_started):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(instance.group, signal.SIGKILL)
        elif _same(instance.pid, instance.pid_started):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(instance.pid, signal.SIGKILL)

    async def recorded(self) -> list[Instance]:
        found = []
        for record in sorted(self.root.glob("*/instance.json")):
            with contextlib.suppress(OSError, ValueError, TypeError):
                found.append(Instance.from_json(record.read_text()))
        return found

    async def adopt(self, instance: Instance, service: ServiceDef, spec_hash: str) -> bool:
        return instance.spec_hash == spec_hash and _same(instance.pid, instance.pid_started)

    async def discard(self, instance: Instance) -> None:
        self._kill_group(instance)
        (self.folder(instance.service) / "instance.json").unlink(missing_ok=True)

    async def usage(self, instance: Instance) -> Usage:
        return await asyncio.to_thread(self._usage, instance)

    def _usage(self, instance: Instance) -> Usage:
        """CPU and RSS of the service and its descendants, from /proc (psutil). CPU is the share
        since the previous sample of this instance (the first sample counts from its start)."""
        try:
            root = self._samples.get(instance.pid)
            if root is None or not root.is_running():
                root = self._samples[instance.pid] = psutil.Process(instance.pid)
                first = True
            else:
                first = False
            procs = [root, *root.children(recursive=True)]
            cpu = memory = 0.0
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    if first or proc is not root:
                        times = proc.cpu_times()
                        age = max(time.time() - proc.create_time(), 1e-3)
                        cpu += 100.0 * (times.user + times.system) / age
                    else:
                        cpu += proc.cpu_percent(None)
                    memory += proc.memory_info().rss
            if first:
                root.cpu_percent(None)
            return Usage(cpu_percent=round(cpu, 1), memory_bytes=int(memory))
        except psutil.Error:
            return Usage()

    def logs(
        self, service: str, instance: Instance | None, *, tail: int, since: float, follow: bool
    ) -> AsyncIterator[LogLine]:
        return logfiles.read(self.folder(service) / "service.log", tail=tail, since=since, follow=follow)

    def health(self) -> dict[str, Any]:
        return {"ok": True}

    async def close(self) -> None:
        """Warm shims are told to exit; running ones are not the daemon's children (services
        left running go on under init, for the next daemon to adopt)."""
        for name in list(self._warm):
            await self.unprepare(name)
