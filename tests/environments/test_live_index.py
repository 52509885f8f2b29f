"""The one place tests reach the live package index: default settings, a real package.

Deselected by default (`-m 'not network'`); `make test-all` runs it.
"""

from __future__ import annotations

import pytest

from envplane.environments import EnvId, EnvironmentService, EnvStatus
from tests.support.envcheck import run_in_env

pytestmark = pytest.mark.network


async def test_create_from_pypi_with_default_sources(make_service) -> None:  # type: ignore[no-untyped-def]
    service: EnvironmentService = await make_service(no_index=False, find_links=[], uv_cache_dir=None)
    view = await service.create(EnvId.parse("net", "six"), ["six>=1.16"])
    assert view.status == EnvStatus.READY
    assert run_in_env(view.python_executable, "import six; print(six.__name__)") == "six"
    exported = await service.export(EnvId.parse("net", "six"))
    assert "--hash=sha256:" in exported.requirements_txt  # an index lock carries hashes
