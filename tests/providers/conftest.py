"""One provider fixture, three implementations: the contract suite runs against each."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from envplane.config import Settings
from envplane.providers import (
    EnvironmentProvider,
    GrpcEnvironmentProvider,
    InMemoryEnvironmentProvider,
    LocalEnvironmentProvider,
)
from tests.support.daemons import ThreadDaemon

KINDS = ["grpc", "local", "in_memory"]


@pytest.fixture(params=KINDS)
def provider_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def provider(
    provider_kind: str, request: pytest.FixtureRequest, plane_settings: Callable[[str], Settings]
) -> Iterator[EnvironmentProvider]:
    made: EnvironmentProvider
    if provider_kind == "grpc":
        daemon: ThreadDaemon = request.getfixturevalue("plane_daemon")
        made = GrpcEnvironmentProvider(daemon.grpc_addr, timeout=120)
    elif provider_kind == "local":
        made = LocalEnvironmentProvider(settings=plane_settings("local-provider"), timeout=120)
    else:
        made = InMemoryEnvironmentProvider()
    with made:
        yield made


@pytest.fixture
def real_env(provider_kind: str) -> None:
    """Skip for the in-memory double where its documented limits apply (it installs nothing)."""
    if provider_kind == "in_memory":
        pytest.skip("the in-memory double installs no packages (documented limit)")
