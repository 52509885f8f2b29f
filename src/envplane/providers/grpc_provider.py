"""``GrpcEnvironmentProvider``: environments from a running envplane daemon."""

from __future__ import annotations

from envplane.client import EnvplaneClient, RetryPolicy
from envplane.environments.identity import EnvId
from envplane.providers.base import EnvState, ProviderBase
from envplane.providers.contract import EnvironmentConfig
from envplane.v1 import environments_pb2 as pb


def _state(env: pb.Environment) -> EnvState:
    return EnvState(
        status=pb.EnvStatus.Name(env.status),
        env_path=env.env_path,
        venv_path=env.venv_path,
        python_executable=env.python_executable,
        python_version=env.python_version,
        lock_hash=env.lock_sha256,
        packages=tuple(env.dependencies),
    )


class GrpcEnvironmentProvider(ProviderBase):
    """Talks to ``envplane serve`` over one gRPC channel, kept for the provider's lifetime.

    ``address`` defaults to ``ENVPLANE_GRPC_ADDR`` (else 127.0.0.1:50051), ``token`` to
    ``ENVPLANE_AUTH_TOKEN``. ``timeout`` is each call's deadline in seconds (None: no deadline;
    a create waits for uv as long as it takes). Calls that find the daemon UNAVAILABLE are
    retried with backoff (``retry``), never past the deadline. Use it as a context manager, or
    call ``close()``.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        token: str | None = None,
        portable_install_options: tuple[str, ...] | list[str] = (),
    ) -> None:
        super().__init__(portable_install_options=portable_install_options)
        self.client = EnvplaneClient(address, timeout=timeout, retry=retry or RetryPolicy(), token=token)

    @property
    def address(self) -> str:
        return self.client.address

    def _create(self, variant_id: str, config: EnvironmentConfig) -> EnvState:
        c = config
        env = self.client.environments.create(
            c.workflow_id,
            c.node_id,
            version_id=c.version_id,
            packages=c.packages,
            requirements=c.requirements,
            python_version=c.python_version,
            exist_ok=True,
        )
        return _state(env)

    def _sync(self, env: EnvId) -> EnvState:
        return _state(
            self.client.environments.sync(env.workflow_id, env.node_id, version_id=env.version_id).environment
        )

    def _locked(self, env: EnvId) -> dict[str, str]:
        deps = self.client.environments.list_deps(env.workflow_id, env.node_id, version_id=env.version_id)
        return {p.name: p.version for p in deps.locked}

    def _delete(self, env: EnvId) -> bool:
        self.client.environments.delete(env.workflow_id, env.node_id, version_id=env.version_id)
        return True

    def _requirements_txt(self, env: EnvId) -> str:
        exported = self.client.environments.export(env.workflow_id, env.node_id, version_id=env.version_id)
        return exported.requirements_txt

    def _close(self) -> None:
        self.client.close()
