"""``RayBatchRunner``: one node function, N variants, each variant in an environment of its own.

The runner asks a provider for every variant's environment concurrently (threads: provider
calls block on uv), and submits a variant's Ray task as soon as its environment is ready, so
building and running overlap. Every variant gets a result: its value, or the stage that failed
(``environment`` or ``task``) and why. One variant's failure never fails the batch.

The node function runs in the variant's interpreter, which has the variant's packages and the
driver's ray, but not the driver's other packages. So it is pickled *by value* (its module's
code travels with it; ``pickle_by_value=False`` turns that off), it should import what it needs
inside its body, and it should return plain data (the driver must be able to unpickle it).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from envplane.errors import EnvplaneError, FailedPrecondition, InvalidArgument
from envplane.providers.contract import EnvironmentConfig, EnvironmentInfo, EnvironmentProvider

try:
    import ray
    import ray.cloudpickle
    import ray.exceptions
except ImportError as exc:  # pragma: no cover - depends on the user's install
    raise ImportError("envplane.ray needs ray: pip install 'envplane[ray]'") from exc

logger = logging.getLogger("envplane.ray")


@dataclass(frozen=True)
class Variant:
    """One variant of the node: its own dependency set and its own call arguments.

    ``variant_id`` becomes the environment's ``version_id``, so it follows the id rules
    (letters, digits, ``._-``)."""

    variant_id: str
    packages: Sequence[str] = ()
    requirements: str = ""
    python_version: str = ""
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, value: Variant | Mapping[str, Any]) -> Variant:
        if isinstance(value, Variant):
            return value
        try:
            return cls(**value)
        except TypeError as exc:
            raise InvalidArgument(f"bad variant {value!r}: {exc}") from exc


@dataclass(frozen=True)
class VariantResult:
    variant_id: str
    ok: bool
    value: Any = None
    stage: str = ""  # where it failed: "environment" or "task" ("" when ok)
    error: str = ""  # a one-line reason
    exception: BaseException | None = None
    env: EnvironmentInfo | None = None
    env_seconds: float = 0.0  # getting the environment (create, or reuse)
    task_seconds: float = 0.0  # from submitting the task to its result


@dataclass(frozen=True)
class BatchResult:
    results: list[VariantResult]  # in the order the variants were given
    seconds: float

    def __getitem__(self, variant_id: str) -> VariantResult:
        for result in self.results:
            if result.variant_id == variant_id:
                return result
        raise KeyError(variant_id)

    def __iter__(self) -> Iterator[VariantResult]:
        return iter(self.results)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> list[VariantResult]:
        return [r for r in self.results if not r.ok]

    def values(self) -> dict[str, Any]:
        return {r.variant_id: r.value for r in self.results if r.ok}


class _Results(dict[str, VariantResult]):
    """Variant id -> result, telling the caller's ``on_result`` of each as it lands."""

    def __init__(self, on_result: Callable[[VariantResult], None] | None) -> None:
        super().__init__()
        self.on_result = on_result

    def __setitem__(self, variant_id: str, result: VariantResult) -> None:
        super().__setitem__(variant_id, result)
        if self.on_result is not None:
            self.on_result(result)


@dataclass
class _Prepared:
    info: EnvironmentInfo | None
    runtime_env: dict[str, Any] | None
    error: BaseException | None
    seconds: float


@dataclass
class _Running:
    variant: Variant
    env: EnvironmentInfo
    env_seconds: float
    submitted: float


class RayBatchRunner:
    """Runs ``fn`` once per variant, as a Ray task inside the variant's environment.

    ``provider`` is any :class:`~envplane.providers.EnvironmentProvider`. Environments are
    ``workflow_id``/``node_id``/``<variant_id>``, created Ray-ready (the driver's ray and
    Python minor version). ``portable=True`` gives Ray the pinned requirements instead of
    the interpreter path (for nodes that do not share the driver's filesystem).
    ``task_options`` go to ``.options()`` of every task (``num_cpus``, ``max_retries``...).
    When the driver has not called ``ray.init()``, ``run`` calls it with Ray's defaults.
    """

    def __init__(
        self,
        provider: EnvironmentProvider,
        *,
        workflow_id: str,
        node_id: str,
        max_concurrent_creates: int = 4,
        portable: bool = False,
        task_options: Mapping[str, Any] | None = None,
        pickle_by_value: bool = True,
    ) -> None:
        EnvironmentConfig(workflow_id, node_id)  # validates the ids now, not per variant
        if max_concurrent_creates < 1:
            raise InvalidArgument(f"max_concurrent_creates must be >= 1, got {max_concurrent_creates}")
        self.provider = provider
        self.workflow_id = workflow_id
        self.node_id = node_id
        self.max_concurrent_creates = max_concurrent_creates
        self.portable = portable
        self.task_options = dict(task_options or {})
        self.pickle_by_value = pickle_by_value
        self._ran: set[str] = set()

    def config_for(self, variant: Variant) -> EnvironmentConfig:
        return EnvironmentConfig(
            workflow_id=self.workflow_id,
            node_id=self.node_id,
            version_id=variant.variant_id,
            packages=tuple(variant.packages),
            requirements=variant.requirements,
            python_version=variant.python_version,
            ray=True,
        )

    def run(
        self,
        fn: Callable[..., Any],
        variants: Iterable[Variant | Mapping[str, Any]],
        *,
        timeout: float | None = None,
        on_result: Callable[[VariantResult], None] | None = None,
    ) -> BatchResult:
        """Run every variant; ``timeout`` (seconds) bounds the whole batch: a task still
        running then is cancelled, and a variant still waiting for its env fails.
        ``on_result`` is called with each variant's result as soon as it is known (progress)."""
        batch = [Variant.of(v) for v in variants]
        ids = [v.variant_id for v in batch]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise InvalidArgument(f"variant ids must be unique; repeated: {duplicates}")
        if not ray.is_initialized():
            ray.init()
        if self.portable:
            check_portable_allowed(dict(ray.get_runtime_context().runtime_env))
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        results = _Results(on_result)
        running: dict[Any, _Running] = {}
        try:
            with _pickled_by_value(fn if self.pickle_by_value else None):
                remote = ray.remote(fn)
                self._create_and_submit(remote, batch, results, running, deadline)
                self._collect(running, results, deadline)
        except BaseException:  # Ctrl-C, or a bug: leave no task of this batch running
            for ref in running:
                ray.cancel(ref, force=True)
            raise
        return BatchResult([results[i] for i in ids], time.monotonic() - started)

    def _prepare(self, variant: Variant) -> _Prepared:
        """Runs in a pool thread; never raises, so one variant cannot fail the batch."""
        began = time.monotonic()
        info: EnvironmentInfo | None = None
        try:
            info = self.provider.create_environment(variant.variant_id, self.config_for(variant))
            runtime_env = self.provider.get_runtime_env(variant.variant_id, portable=self.portable)
            return _Prepared(info, runtime_env, None, time.monotonic() - began)
        except Exception as exc:
            return _Prepared(info, None, exc, time.monotonic() - began)

    def _create_and_submit(
        self,
        remote: Any,
        batch: list[Variant],
        results: dict[str, VariantResult],
        running: dict[Any, _Running],
        deadline: float | None,
    ) -> None:
        """Create envs concurrently; submit each variant's task as soon as its env is ready."""
        began = time.monotonic()
        pool = ThreadPoolExecutor(min(self.max_concurrent_creates, len(batch)) or 1, "envplane-create")
        pending: dict[Future[_Prepared], Variant] = {pool.submit(self._prepare, v): v for v in batch}
        self._ran.update(v.variant_id for v in batch)
        try:
            for future in as_completed(list(pending), timeout=_remaining(deadline)):
                variant = pending.pop(future)
                prepared = future.result()
                if prepared.error is not None:
                    results[variant.variant_id] = _failed_environment(variant, prepared)
                    continue
                assert prepared.info is not None and prepared.runtime_env is not None
                logger.info("variant %s: environment ready in %.2f s", variant.variant_id, prepared.seconds)
                ref = remote.options(runtime_env=prepared.runtime_env, **self.task_options).remote(
                    *variant.args, **dict(variant.kwargs)
                )
                running[ref] = _Running(variant, prepared.info, prepared.seconds, time.monotonic())
        except TimeoutError:
            timed_out = TimeoutError("the batch timeout passed while its environment was being made")
            for variant in pending.values():
                results[variant.variant_id] = _failed_environment(
                    variant, _Prepared(None, None, timed_out, time.monotonic() - began)
                )
        finally:
            # Creates still running go on in the background (a blocking provider call cannot
            # be interrupted); creates not started yet are dropped.
            pool.shutdown(wait=False, cancel_futures=True)

    def _collect(self, running: dict[Any, _Running], results: dict[str, VariantResult], deadline: float | None) -> None:
        while running:
            ready, _ = ray.wait(list(running), num_returns=1, timeout=_remaining(deadline))
            if not ready:  # the batch deadline passed
                for ref, item in running.items():
                    ray.cancel(ref, force=True)
                    results[item.variant.variant_id] = self._failed_task(
                        item, TimeoutError("the batch timeout passed before the task finished")
                    )
                return
            ref = ready[0]
            item = running.pop(ref)
            try:
                value = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                results[item.variant.variant_id] = self._failed_task(item, exc.cause or exc, exc)
            except ray.exceptions.RayError as exc:  # the worker died, the task was cancelled...
                results[item.variant.variant_id] = self._failed_task(item, exc)
            else:
                results[item.variant.variant_id] = VariantResult(
                    item.variant.variant_id,
                    True,
                    value=value,
                    env=item.env,
                    env_seconds=item.env_seconds,
                    task_seconds=time.monotonic() - item.submitted,
                )

    @staticmethod
    def _failed_task(item: _Running, cause: BaseException, raised: BaseException | None = None) -> VariantResult:
        error = f"{type(cause).__name__}: {cause}".splitlines()[0]
        logger.warning("variant %s: task failed: %s", item.variant.variant_id, error)
        return VariantResult(
            item.variant.variant_id,
            False,
            stage="task",
            error=error,
            exception=raised or cause,
            env=item.env,
            env_seconds=item.env_seconds,
            task_seconds=time.monotonic() - item.submitted,
        )

    def cleanup(self) -> dict[str, bool]:
        """Delete the environments of every variant this runner has run: ``{variant: removed}``."""
        removed = {variant: self.provider.cleanup_environment(variant) for variant in sorted(self._ran)}
        self._ran.clear()
        return removed


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


def _failed_environment(variant: Variant, prepared: _Prepared) -> VariantResult:
    error = prepared.error
    assert error is not None
    message = error.message if isinstance(error, EnvplaneError) else f"{type(error).__name__}: {error}"
    message = message.splitlines()[0] if message else type(error).__name__
    logger.warning("variant %s: no environment: %s", variant.variant_id, message)
    return VariantResult(
        variant.variant_id,
        False,
        stage="environment",
        error=message,
        exception=error,
        env=prepared.info,
        env_seconds=prepared.seconds,
    )


def check_portable_allowed(job_runtime_env: Mapping[str, Any]) -> None:
    """Ray's ``uv`` plugin cannot build an env when the job already fixes ``py_executable``:
    the job's interpreter wins and the task never starts. Ray sets one itself for a driver
    started with ``uv run`` (it replays ``uv run`` on the workers)."""
    executable = job_runtime_env.get("py_executable")
    if executable:
        raise FailedPrecondition(
            f"portable=True cannot work in this Ray job: it runs every worker with py_executable={executable!r} "
            "(Ray does this when the driver is started with `uv run`), and Ray's uv plugin cannot rebuild an env "
            "under it. Start the driver with python directly (or set RAY_ENABLE_UV_RUN_RUNTIME_ENV=0), "
            "or use portable=False"
        )


@contextmanager
def _pickled_by_value(fn: Callable[..., Any] | None) -> Iterator[None]:
    """Ship ``fn``'s module by value while the batch is submitted: the variant's interpreter
    cannot import the driver's modules (``__main__`` is pickled by value anyway)."""
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    if fn is None or module is None or module.__name__ == "__main__":
        yield
        return
    already = module.__name__ in ray.cloudpickle.list_registry_pickle_by_value()  # type: ignore[no-untyped-call]
    if not already:
        ray.cloudpickle.register_pickle_by_value(module)  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if not already:
            ray.cloudpickle.unregister_pickle_by_value(module)  # type: ignore[no-untyped-call]
