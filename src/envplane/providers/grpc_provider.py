"""``GrpcEnvironmentProvider``: environments from a running envplane daemon."""

from __future__ import annotations

from envplane.client.retry import RetryPolicy
from envplane.client.sync import EnvplaneClient
from envplane.environments.identity import EnvId
from envplane.errors import FailedPrecondition
from envplane.providers.base import ProviderBase
from envplane.providers.contract import EnvironmentConfig, EnvironmentInfo
from envplane.v1 import environments_pb2 as pb


class GrpcEnvironmentProvider(ProviderBase):
    """Talks to ``envplane serve`` over one gRPC channel, kept for the provider's lifetime.

    ``address`` defaults to ``ENVPLANE_GRPC_ADDR`` (else 127.0.0.1:50051). ``timeout`` is
    each call's deadline in seconds (None: no deadline; a create waits for uv as long as it
    takes). Calls that find the daemon UNAVAILABLE are retried with backoff (``retry``),
    never past the deadline. Use it as a context manager, or call ``close()``.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        portable_install_options: tuple[str, ...] | list[str] = (),
    ) -> None:
        super().__init__(portable_install_options=portable_install_options)
        self.client = EnvplaneClient(address, timeout=timeout, retry=retry or RetryPolicy())
        self._closed = False

    @property
    def address(self) -> str:
        return self.client.address

    def _check_open(self) -> None:
        if self._closed:
            raise FailedPrecondition("this GrpcEnvironmentProvider is closed")

    def _create(self, variant_id: str, config: EnvironmentConfig) -> EnvironmentInfo:
        self._check_open()
        c = config
        env = self.client.create_env(
            c.workflow_id,
            c.node_id,
            c.version_id,
            packages=c.packages,
            requirements=c.requirements,
            python_version=c.python_version,
            exist_ok=True,
        )
        if env.status == pb.BROKEN:  # reused, but its venv build is gone: rebuild it
            env = self.client.sync_env(c.workflow_id, c.node_id, c.version_id).environment

        def locked() -> dict[str, str]:
            deps = self.client.list_deps(c.workflow_id, c.node_id, c.version_id)
            return {p.name: p.version for p in deps.locked}

        return EnvironmentInfo(
            variant_id=variant_id,
            workflow_id=env.ref.workflow_id,
            node_id=env.ref.node_id,
            version_id=env.ref.version_id,
            status=pb.EnvStatus.Name(env.status),
            env_path=env.env_path,
            venv_path=env.venv_path,
            python_executable=env.python_executable,
            python_version=env.python_version,
            lock_hash=env.lock_sha256,
            packages=tuple(env.dependencies),
            locked=self._locked_packages(env.lock_sha256, locked),
        )

    def _delete(self, env: EnvId) -> bool:
        self._check_open()
        self.client.delete_env(env.workflow_id, env.node_id, env.version_id)
        return True

    def _requirements_txt(self, info: EnvironmentInfo) -> str:
        self._check_open()
        return self.client.export_env(info.workflow_id, info.node_id, info.version_id).requirements_txt

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self.client.close()
