"""The environment service in-process, on real uv with the local wheelhouse."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from envplane.core.audit import OperationFilter
from envplane.environments import EnvId, EnvironmentService, EnvStatus
from envplane.environments.service import queries
from envplane.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, ResolutionFailed
from tests.support.activity import operations, watch
from tests.support.envcheck import importable, snapshot, version_in_env

WF = EnvId.parse("wf", "node")


async def test_create_gives_a_ready_env_whose_python_imports_the_packages(
    service: EnvironmentService,
) -> None:
    view = await service.create(WF, ["beta"], python_version="3.11")
    assert view.status == EnvStatus.READY
    assert view.record.python_version.startswith("3.11")
    assert view.dependencies == ["beta>=1.0.0"]
    assert view.has_pyproject and view.has_lock and view.has_venv
    assert not view.busy_with
    assert version_in_env(view.python_executable, "beta") == "1.0.0"
    assert version_in_env(view.python_executable, "alpha") == "2.0.0"  # beta needs alpha>=1.1
    folder = Path(view.env_path)
    assert folder == service.layout.projects / "wf" / "node" / "_"
    assert (folder / ".venv").is_symlink()
    assert Path(view.venv_path).resolve() == service.layout.build_dir(view.record.build_id)


async def test_requirements_content_and_versions(service: EnvironmentService) -> None:
    env = EnvId.parse("wf", "node", "v1")
    view = await service.create(env, ["gamma==0.1.0"], requirements="# pinned\nalpha<2\n")
    assert sorted(view.dependencies) == ["alpha<2", "gamma==0.1.0"]
    assert version_in_env(view.python_executable, "alpha") == "1.1.0"
    assert view.env_path.endswith("/wf/node/v1")


async def test_identical_specs_share_one_build_and_skip_resolution(service: EnvironmentService) -> None:
    first = await service.create(EnvId.parse("wf", "a"), ["alpha<2", "gamma"])
    uv_before = service.uv.started_total
    second = await service.create(EnvId.parse("wf", "b"), ["gamma", "alpha<2"])
    assert second.record.build_id == first.record.build_id
    assert second.record.uv_lock == first.record.uv_lock
    assert service.uv.started_total == uv_before, "an identical spec must not run uv again"
    other = await service.create(EnvId.parse("wf", "c"), ["alpha"])
    assert other.record.build_id != first.record.build_id
    assert len(service.builds.on_disk()) == 2


async def test_create_twice_is_already_exists(service: EnvironmentService) -> None:
    await service.create(WF, ["alpha"])
    with pytest.raises(AlreadyExists, match="wf/node already exists"):
        await service.create(WF, ["alpha"])


async def test_exist_ok_returns_an_env_made_from_the_same_spec_and_refuses_another(
    service: EnvironmentService,
) -> None:
    first = await service.create(WF, ["alpha<2", "gamma"])
    assert len(first.lock_sha256) == 64
    uv_before = service.uv.started_total
    again = await service.create(WF, ["gamma", "alpha<2"], exist_ok=True)
    assert service.uv.started_total == uv_before, "reusing an env must not run uv"
    assert (again.record.build_id, again.lock_sha256) == (first.record.build_id, first.lock_sha256)
    assert again.record.last_used_at >= first.record.last_used_at
    assert not again.busy_with
    refused = r"different spec: it declares \['alpha<2', 'gamma>=0.2.0'\].*'alpha==1.0.0'"
    with pytest.raises(AlreadyExists, match=refused):
        await service.create(WF, ["alpha==1.0.0"], exist_ok=True)
    assert (await service.status(WF)).lock_sha256 == first.lock_sha256, "a refused create changes nothing"
    creates = (await operations(service, workflow_id="wf", operation="create")).items
    assert len(creates) == 1, "a reuse is not a new operation"


async def test_unavailable_python_is_a_clear_invalid_argument_and_leaves_nothing(
    service: EnvironmentService,
) -> None:
    with pytest.raises(InvalidArgument) as info:
        await service.create(WF, ["alpha"], python_version="3.4")
    assert "python_version '3.4' is not available" in info.value.message
    assert "does not download interpreters" in info.value.message
    assert await service.core.store.run(lambda s: queries.get_env(s, ("wf", "node", ""))) is None


async def test_failed_create_reports_uv_error_and_no_ready_env(service: EnvironmentService) -> None:
    with pytest.raises(ResolutionFailed) as info:
        await service.create(WF, ["broken"])
    assert "does-not-exist" in info.value.message
    assert "No solution found" in info.value.detail
    view = await service.status(WF)
    assert view.status == EnvStatus.FAILED
    assert "does-not-exist" in view.record.error
    assert not Path(view.env_path).exists()
    ops = await operations(service, workflow_id="wf")
    assert ops.items[0].status == "FAILED" and "does-not-exist" in ops.items[0].stderr
    assert ops.items[0].exit_code == 1
    # A failed env can be created again.
    again = await service.create(WF, ["alpha"])
    assert again.status == EnvStatus.READY


async def test_add_update_remove_change_the_lock_and_the_venv(service: EnvironmentService) -> None:
    view = await service.create(WF, ["alpha<2"])
    assert version_in_env(view.python_executable, "alpha") == "1.1.0"

    added = await service.add_deps(WF, ["gamma==0.1.0"])
    assert added.changes == {"gamma": ["", "0.1.0"]}
    assert added.env.record.build_id != view.record.build_id
    assert version_in_env(view.python_executable, "gamma") == "0.1.0"
    assert not service.layout.build_dir(view.record.build_id).exists(), "old build collected"

    updated = await service.update_deps(WF, ["gamma>=0.2"])
    assert updated.changes == {"gamma": ["0.1.0", "0.2.0"]}
    assert "gamma>=0.2" in updated.env.dependencies
    assert version_in_env(view.python_executable, "gamma") == "0.2.0"

    widened = await service.update_deps(WF, ["alpha>=1"])
    assert widened.changes == {"alpha": ["1.1.0", "2.0.0"]}

    removed = await service.remove_deps(WF, ["gamma"])
    assert removed.changes == {"gamma": ["0.2.0", ""]}
    assert not importable(view.python_executable, "gamma")
    deps = await service.list_deps(WF)
    assert deps.declared == ["alpha>=1"]
    assert [(p.name, p.version) for p in deps.locked] == [("alpha", "2.0.0")]


async def test_update_all_without_names(service: EnvironmentService) -> None:
    await service.create(WF, ["alpha"], requirements="")
    outcome = await service.update_deps(WF, [])
    assert outcome.changes == {}
    assert outcome.operation.status == "SUCCEEDED"


async def test_failed_dependency_changes_leave_files_and_venv_exactly_as_before(
    service: EnvironmentService,
) -> None:
    view = await service.create(WF, ["alpha<2"])
    before = snapshot(view.env_path)
    with pytest.raises(ResolutionFailed, match="does-not-exist"):
        await service.add_deps(WF, ["broken"])
    assert snapshot(view.env_path) == before
    with pytest.raises(ResolutionFailed):
        await service.update_deps(WF, ["alpha>=5"])
    assert snapshot(view.env_path) == before
    with pytest.raises(NotFound, match="'gamma' is not declared"):
        await service.remove_deps(WF, ["gamma"])
    with pytest.raises(NotFound, match="not a dependency"):
        await service.update_deps(WF, ["gamma"])
    assert snapshot(view.env_path) == before
    assert version_in_env(view.python_executable, "alpha") == "1.1.0"
    status = await service.status(WF)
    assert status.status == EnvStatus.READY
    failed = await operations(service, workflow_id="wf", status="FAILED")
    assert [o.operation for o in failed.items] == ["update", "add"]
    assert list(service.layout.data_dir.tmp.iterdir()) == [], "staging folders are removed"


async def test_operations_on_missing_env_are_not_found(service: EnvironmentService) -> None:
    for call in (
        service.status(WF),
        service.add_deps(WF, ["alpha"]),
        service.update_deps(WF, []),
        service.remove_deps(WF, ["alpha"]),
        service.sync(WF),
        service.export(WF),
        service.list_deps(WF),
        service.delete(WF),
    ):
        with pytest.raises(NotFound, match="wf/node does not exist"):
            await call


async def test_bad_arguments(service: EnvironmentService) -> None:
    await service.create(WF, ["alpha"])
    with pytest.raises(InvalidArgument, match="at least one package"):
        await service.add_deps(WF, [])
    with pytest.raises(InvalidArgument, match="bare package name"):
        await service.remove_deps(WF, ["alpha>=1"])
    with pytest.raises(InvalidArgument, match="command-line option"):
        await service.add_deps(WF, ["--index-url=http://x"])
    with pytest.raises(InvalidArgument, match="status 'NOPE'"):
        await service.list_envs(status="NOPE")
    with pytest.raises(InvalidArgument, match="idle_hours must be greater than 0"):
        await service.cleanup(0)


async def test_direct_references_allowed_by_setting(make_service, wheelhouse: Path) -> None:  # type: ignore[no-untyped-def]
    wheel = next(wheelhouse.glob("gamma-0.1.0-*.whl"))
    strict = await make_service()
    with pytest.raises(InvalidArgument, match="direct references are disabled"):
        await strict.create(WF, [f"gamma @ {wheel.as_uri()}"])
    lenient = await make_service(allow_direct_references=True, data_dir=wheelhouse.parent / "lenient")
    view = await lenient.create(WF, [f"gamma @ {wheel.as_uri()}"])
    assert version_in_env(view.python_executable, "gamma") == "0.1.0"


async def test_export_gives_pyproject_lock_and_pinned_requirements(service: EnvironmentService) -> None:
    view = await service.create(WF, ["beta"])
    exported = await service.export(WF)
    assert exported.pyproject_toml == Path(view.env_path, "pyproject.toml").read_text()
    assert exported.uv_lock == Path(view.env_path, "uv.lock").read_text()
    lines = [line for line in exported.requirements_txt.splitlines() if "==" in line]
    assert [line.split()[0] for line in lines] == ["alpha==2.0.0", "beta==1.0.0"]
    # Every locked package is pinned, and the virtual project itself is not emitted.
    assert "envplane-env==" not in exported.requirements_txt
    assert "-e " not in exported.requirements_txt


async def test_sync_rebuilds_a_missing_build(service: EnvironmentService) -> None:
    view = await service.create(WF, ["alpha<2"])
    build = service.layout.build_dir(view.record.build_id)
    import shutil

    shutil.rmtree(build)
    report = await service.start()  # what a restart does
    assert report.broken == ["wf/node"]
    broken = await service.status(WF)
    assert broken.status == EnvStatus.BROKEN and "run sync" in broken.record.error
    with pytest.raises(FailedPrecondition, match="status is BROKEN"):
        await service.add_deps(WF, ["gamma"])
    synced = await service.sync(WF)
    assert synced.env.status == EnvStatus.READY
    assert version_in_env(view.python_executable, "alpha") == "1.1.0"
    synced_events = [e async for e in await watch(service, 0, types=["EnvironmentSynced"], follow=False)]
    assert [e.payload["was"] for e in synced_events] == ["BROKEN"]


async def test_sync_repairs_a_tampered_venv(service: EnvironmentService) -> None:
    view = await service.create(WF, ["alpha<2"])
    site = next(Path(view.venv_path).resolve().glob("lib/python*/site-packages"))
    import shutil

    for path in site.glob("alpha*"):
        shutil.rmtree(path)
    assert not importable(view.python_executable, "alpha")
    await service.sync(WF)
    assert version_in_env(view.python_executable, "alpha") == "1.1.0"


async def test_delete_removes_folder_and_unshared_build(service: EnvironmentService) -> None:
    one = await service.create(EnvId.parse("wf", "one"), ["alpha"])
    await service.create(EnvId.parse("wf", "two"), ["alpha"])
    await service.delete(EnvId.parse("wf", "one"))
    assert not Path(one.env_path).exists()
    assert service.layout.build_dir(one.record.build_id).exists(), "still used by wf/two"
    await service.delete(EnvId.parse("wf", "two"))
    assert not service.layout.build_dir(one.record.build_id).exists()
    assert not (service.layout.projects / "wf").exists(), "empty parents pruned"


async def test_cleanup_removes_idle_envs_with_dry_run(service: EnvironmentService) -> None:
    await service.create(EnvId.parse("wf", "old"), ["alpha"])
    await service.create(EnvId.parse("wf", "new"), ["gamma"])
    long_ago = time.time() - 48 * 3600
    await service.core.store.run(lambda s: queries.upsert_env(s, ("wf", "old", ""), last_used_at=long_ago))
    dry = await service.cleanup(24, dry_run=True)
    assert [str(e) for e in dry.removed] == ["wf/old"]
    assert (await service.status(EnvId.parse("wf", "old"))).status == EnvStatus.READY
    real = await service.cleanup(24)
    assert [str(e) for e in real.removed] == ["wf/old"]
    assert len(real.builds_removed) == 0  # delete already collected the build
    with pytest.raises(NotFound):
        await service.status(EnvId.parse("wf", "old"))
    assert (await service.status(EnvId.parse("wf", "new"))).status == EnvStatus.READY
    done = [e async for e in await watch(service, 0, types=["EnvironmentCleanupCompleted"], follow=False)]
    assert [(e.payload["dry_run"], e.payload["removed"]) for e in done] == [(True, ["wf/old"]), (False, ["wf/old"])]
    assert (await operations(service, operation="cleanup")).total == 2


async def test_list_filters_and_paginates(service: EnvironmentService) -> None:
    for node in ("n1", "n2", "n3"):
        await service.create(EnvId.parse("wf", node), ["alpha"])
    await service.create(EnvId.parse("other", "n1"), ["alpha"])
    page = await service.list_envs(workflow_id="wf", page_size=2)
    assert [str(v.id) for v in page.items] == ["wf/n1", "wf/n2"] and page.total == 3
    rest = await service.list_envs(workflow_id="wf", page_size=2, page_token=page.next_page_token)
    assert [str(v.id) for v in rest.items] == ["wf/n3"] and rest.next_page_token == ""
    by_node = await service.list_envs(node_id="n1")
    assert sorted(str(v.id) for v in by_node.items) == ["other/n1", "wf/n1"]
    assert (await service.list_envs(status="FAILED")).total == 0


async def test_operations_audit_filters_pages_and_deletes(service: EnvironmentService) -> None:
    await service.create(EnvId.parse("wf", "a"), ["alpha"])
    await service.add_deps(EnvId.parse("wf", "a"), ["gamma"])
    await service.create(EnvId.parse("wf", "b"), ["alpha"])
    everything = await operations(service)
    assert [o.operation for o in everything.items] == ["create", "add", "create"]
    op = everything.items[1]
    assert op.status == "SUCCEEDED" and op.finished_at and op.duration_ms is not None
    assert op.duration_ms == pytest.approx((op.finished_at - op.started_at) * 1000, abs=2)
    assert op.details["changes"] == {"gamma": ["", "0.2.0"]}
    first = await operations(service, page_size=2)
    second = await operations(service, page_size=2, page_token=first.next_page_token)
    assert [o.id for o in first.items + second.items] == [o.id for o in everything.items]
    assert (await operations(service, node_id="a", operation="add")).total == 1
    deleted = await service.core.activity.delete_operations(OperationFilter(workflow_id="wf", node_id="a"))
    assert deleted == (2, ["a"])
    assert (await operations(service)).total == 1


async def test_events_are_persisted_in_order_and_resumable(service: EnvironmentService) -> None:
    await service.create(WF, ["alpha"])
    await service.add_deps(WF, ["gamma"])
    with pytest.raises(ResolutionFailed):
        await service.create(EnvId.parse("wf", "bad"), ["broken"])
    await service.delete(WF)
    events = [e async for e in await watch(service, 0, follow=False)]
    assert [e.type for e in events] == [
        "EnvironmentCreationStarted",
        "EnvironmentCreated",
        "DependenciesAdded",
        "EnvironmentCreationStarted",
        "EnvironmentCreationFailed",
        "EnvironmentDeleted",
    ]
    assert events[2].payload["changes"] == {"gamma": ["", "0.2.0"]}
    resumed = [e async for e in await watch(service, events[3].cursor, follow=False)]
    assert [e.cursor for e in resumed] == [e.cursor for e in events[4:]]
    only = [e async for e in await watch(service, 0, types=["EnvironmentDeleted"], follow=False)]
    assert len(only) == 1
    with pytest.raises(InvalidArgument, match="types: unknown event type"):
        await watch(service, 0, types=["Nope"])
