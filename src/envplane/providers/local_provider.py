"""``LocalEnvironmentProvider``: the environment service in-process, no daemon.

For notebooks, scripts and tests. The service is asynchronous, so it runs on an event loop
in a background thread of its own; the provider's blocking methods submit to that loop and
wait. The data dir is locked while the provider is open: a daemon on the same data dir
refuses to start, and this provider refuses a data dir a daemon is serving. Opening it does
what a daemon's start-up does for environments: the database is migrated, and what a crashed
process left behind is recovered.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from envplane.config import Settings
from envplane.core.capability import Core
from envplane.core.datadir import DataDirLock
from envplane.environments.identity import EnvId
from envplane.environments.service import EnvironmentService, EnvView
from envplane.providers.base import EnvState, ProviderBase
from envplane.providers.contract import EnvironmentConfig
from envplane.store import Store

T = TypeVar("T")


def _state(view: EnvView) -> EnvState:
    return EnvState(
        status=view.status,
        env_path=view.env_path,
        venv_path=view.venv_path,
        python_executable=view.python_executable,
        python_version=view.record.python_version,
        lock_hash=view.lock_sha256,
        packages=tuple(view.dependencies),
    )


class LocalEnvironmentProvider(ProviderBase):
    """``data_dir`` (else ``ENVPLANE_DATA_DIR``, else the default) holds the envs; any other
    :class:`~envplane.config.Settings` field can be given as a keyword (``find_links=[...]``)
    or a whole ``settings`` object. ``timeout`` bounds each call, in seconds."""

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        settings: Settings | None = None,
        timeout: float | None = None,
        portable_install_options: tuple[str, ...] | list[str] = (),
        **overrides: Any,
    ) -> None:
        super().__init__(portable_install_options=portable_install_options)
        if settings is None:
            if data_dir is not None:
                overrides["data_dir"] = Path(data_dir)
            settings = Settings(**overrides)
        elif data_dir is not None or overrides:
            raise TypeError("pass either settings or data_dir/overrides, not both")
        self.settings = settings
        self.timeout = timeout
        self._data_lock = DataDirLock(settings.data_dir, "a LocalEnvironmentProvider")
        self._data_lock.acquire()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="envplane-local", daemon=True)
        self._thread.start()
        try:
            self.service = self._run(self._open())
        except BaseException:
            self._stop_loop()
            self._data_lock.release()
            raise

    async def _open(self) -> EnvironmentService:
        self.store = await asyncio.to_thread(Store, self.settings.resolved_database_url)
        self.core = Core(self.settings, self.store)
        await self.core.recover()
        service = EnvironmentService(self.core)
        await service.start()
        return service

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            self._check_open()
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # Ctrl-C while waiting: cancel the operation (uv is killed)
            raise

    def _deadline(self) -> float | None:
        return None if self.timeout is None else time.monotonic() + self.timeout

    def _create(self, variant_id: str, config: EnvironmentConfig) -> EnvState:
        c = config
        view = self._run(
            self.service.create(
                c.env_id, c.packages, c.requirements, c.python_version, deadline=self._deadline(), exist_ok=True
            )
        )
        return _state(view)

    def _sync(self, env: EnvId) -> EnvState:
        return _state(self._run(self.service.sync(env, deadline=self._deadline())).env)

    def _locked(self, env: EnvId) -> dict[str, str]:
        return {p.name: p.version for p in self._run(self.service.list_deps(env)).locked}

    def _delete(self, env: EnvId) -> bool:
        self._run(self.service.delete(env, deadline=self._deadline()))
        return True

    def _requirements_txt(self, env: EnvId) -> str:
        return self._run(self.service.export(env, deadline=self._deadline())).requirements_txt

    def _close(self) -> None:
        async def shut() -> None:
            await self.service.close()
            await self.core.stop()
            self.store.close()

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result()
        self._stop_loop()
        self._data_lock.release()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
