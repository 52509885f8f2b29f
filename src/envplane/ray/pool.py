"""``RayPool``: the same handler as an envplane pool, run as Ray actors inside the env.

When one machine is not enough, the workers become Ray actors: each actor runs with the env's
``runtime_env`` (``py_executable`` on a host that shares the env's files, or the env's pinned
requirements with ``portable=True``), loads the handler exactly as a pool worker does (the same
``bootstrap.py`` code, shipped as source: the env needs ray, not envplane), and serves the same
commands: functions, generators (Ray streaming generators), async functions and async
generators. Sessions keep their state in one actor; Ray's own ``max_restarts`` /
``max_task_retries`` decide restarts, and a session whose actor restarted (its state is gone)
fails with ``SessionLost`` instead of silently starting over.

Values are pickled by Ray (any Python object). Handler exceptions come back as ``CommandError``
with the actor's traceback; a dead actor is ``WorkerCrashed``; ``timeout`` cancels the task.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from envplane.errors import (
    CommandError,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    SessionLost,
    WorkerCrashed,
)
from envplane.providers.contract import EnvironmentProvider
from envplane.ray import actor

try:
    import ray
    import ray.cloudpickle
    import ray.exceptions
except ImportError as exc:  # pragma: no cover - depends on the user's install
    raise ImportError("envplane.ray needs ray: pip install 'envplane[ray]'") from exc

# The actor's class travels by value: the env's interpreter has ray, not envplane.
if actor.__name__ not in ray.cloudpickle.list_registry_pickle_by_value():  # type: ignore[no-untyped-call]
    ray.cloudpickle.register_pickle_by_value(actor)  # type: ignore[no-untyped-call]

_BOOTSTRAP = Path(__file__).resolve().parents[1] / "workers" / "service" / "bootstrap.py"
_STREAMS = ("generator", "async_generator")


class RayPool:
    """``size`` Ray actors running ``handler`` in an environment.

    The environment comes from ``provider`` + ``variant_id`` (created Ray-ready, e.g. by
    ``provider.create_environment(variant, {..., "ray": True})``), or as a ``runtime_env``
    given directly. ``actor_options`` go to every actor's ``.options()`` (``num_cpus``,
    ``max_restarts``, ``max_task_retries``, ``max_concurrency``, ``resources``...)."""

    def __init__(
        self,
        handler: str,
        *,
        provider: EnvironmentProvider | None = None,
        variant_id: str = "",
        runtime_env: Mapping[str, Any] | None = None,
        portable: bool = False,
        size: int = 2,
        init: str = "init",
        init_args: Any = None,
        actor_options: Mapping[str, Any] | None = None,
        start_timeout: float = 300.0,
    ) -> None:
        if size < 1:
            raise InvalidArgument(f"size must be at least 1, got {size}")
        if (provider is None) == (runtime_env is None):
            raise InvalidArgument("give either provider and variant_id, or runtime_env")
        if provider is not None:
            if not variant_id:
                raise InvalidArgument("variant_id names the provider's environment to run in")
            runtime_env = provider.get_runtime_env(variant_id, portable=portable)
        assert runtime_env is not None
        if not ray.is_initialized():
            ray.init()
        path = Path(handler)
        # A file's code travels with the actor (any host); a module must be importable there.
        source = path.read_text() if path.suffix == ".py" and path.is_file() else None
        options = {"max_concurrency": 1, **dict(actor_options or {}), "runtime_env": dict(runtime_env)}
        actor_class = ray.remote(actor.HandlerActor)
        self._actors: list[Any] = [
            actor_class.options(**options).remote(_BOOTSTRAP.read_text(), handler, source, init, init_args)
            for _ in range(size)
        ]
        try:
            hellos = ray.get([handle.hello.remote() for handle in self._actors], timeout=start_timeout)
        except ray.exceptions.GetTimeoutError:
            self.close()
            raise DeadlineExceeded(f"the Ray actors were not ready within {start_timeout:g} s") from None
        except ray.exceptions.RayActorError as exc:
            self.close()
            raise WorkerCrashed(f"a Ray actor could not load the handler {handler!r}: {_cause(exc)}") from None
        self.commands: dict[str, dict[str, Any]] = hellos[0]["commands"]
        self.actors_info = hellos
        self._outstanding = [0] * size
        self._lock = threading.Lock()
        self._sessions: dict[str, tuple[int, str]] = {}  # session -> (actor index, incarnation)
        self._rr = itertools.count()

    def wait_ready(self, timeout: float = 120.0) -> list[dict[str, Any]]:
        """Until every actor answers (after a Ray restart, its handler is loaded again)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                hellos = ray.get(
                    [h.hello.remote() for h in self._actors], timeout=max(deadline - time.monotonic(), 0.1)
                )
                self.actors_info = hellos
                return hellos
            except ray.exceptions.GetTimeoutError:
                raise DeadlineExceeded(f"the Ray actors did not answer within {timeout:g} s") from None
            except ray.exceptions.RayActorError as exc:  # restarting, or dead for good
                if time.monotonic() > deadline or "restarting" not in str(exc):
                    raise WorkerCrashed(f"a Ray actor is gone: {_cause(exc)}", cause=_cause(exc)) from None
                time.sleep(0.2)

    # ---- routing --------------------------------------------------------------------------------

    def _check(self, command: str, stream: bool) -> None:
        info = self.commands.get(command)
        if info is None:
            raise NotFound(f"the handler has no command {command!r}; its commands: {', '.join(sorted(self.commands))}")
        if (info["kind"] in _STREAMS) is not stream:
            how = "execute_stream" if info["kind"] in _STREAMS else "execute"
            raise InvalidArgument(f"{command!r} is a {info['kind']}: call it with {how}")

    def _pick(self, session: str | None) -> int:
        with self._lock:
            if session is not None and session in self._sessions:
                return self._sessions[session][0]
            start = next(self._rr)
            order = sorted(
                range(len(self._actors)), key=lambda i: (self._outstanding[i], (i - start) % len(self._actors))
            )
            return order[0]

    def _bind(self, session: str | None, index: int, incarnation: str) -> None:
        if session is None:
            return
        with self._lock:
            bound = self._sessions.get(session)
            if bound is None:
                self._sessions[session] = (index, incarnation)
            elif bound[1] != incarnation:
                del self._sessions[session]
                raise SessionLost(f"session {session!r} lost its state: its Ray actor restarted; start a new session")

    def execute(
        self, command: str, args: Any = None, *, session: str | None = None, timeout: float | None = None
    ) -> Any:
        """The command's value, computed in an actor (in the session's actor, with ``session``)."""
        self._check(command, stream=False)
        index = self._pick(session)
        with self._lock:
            self._outstanding[index] += 1
        ref = self._actors[index].call.remote(command, args, session)
        try:
            incarnation, value = ray.get(ref, timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            ray.cancel(ref)
            raise DeadlineExceeded(f"{command!r} ran past its timeout of {timeout:g} s and was cancelled") from None
        except ray.exceptions.RayTaskError as exc:
            raise _command_error(command, exc) from None
        except ray.exceptions.RayActorError as exc:
            if session is not None:
                with self._lock:
                    self._sessions.pop(session, None)
                raise SessionLost(f"session {session!r} lost its state: its Ray actor died ({_cause(exc)})") from None
            raise WorkerCrashed(f"the Ray actor running {command!r} died: {_cause(exc)}", cause=_cause(exc)) from None
        finally:
            with self._lock:
                self._outstanding[index] -= 1
        self._bind(session, index, incarnation)
        return value

    def execute_stream(
        self, command: str, args: Any = None, *, session: str | None = None, timeout: float | None = None
    ) -> Iterator[Any]:
        """The values a generator command yields, as Ray streams them back."""
        self._check(command, stream=True)
        index = self._pick(session)
        generator = self._actors[index].stream.options(num_returns="streaming").remote(command, args, session)
        try:
            for ref in generator:
                try:
                    yield ray.get(ref, timeout=timeout)
                except ray.exceptions.RayTaskError as exc:
                    raise _command_error(command, exc) from None
                except ray.exceptions.RayActorError as exc:
                    raise WorkerCrashed(f"the Ray actor streaming {command!r} died: {_cause(exc)}") from None
                except ray.exceptions.GetTimeoutError:
                    raise DeadlineExceeded(f"{command!r} did not yield within {timeout:g} s") from None
        finally:
            ray.cancel(generator)

    def end_session(self, session: str) -> bool:
        with self._lock:
            bound = self._sessions.pop(session, None)
        if bound is None:
            return False
        return bool(ray.get(self._actors[bound[0]].end_session.remote(session)))

    def close(self) -> None:
        for handle in self._actors:
            ray.kill(handle, no_restart=True)
        self._actors = []

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _command_error(command: str, exc: ray.exceptions.RayTaskError) -> CommandError:
    cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
    return CommandError.raised(
        command, type(cause).__name__, str(cause), module=type(cause).__module__, traceback=str(exc)
    )
