"""The files of an environment's uv project: generating, reading and diffing them.

Every env uses the same project name so that identical specs give byte-identical
``pyproject.toml`` and ``uv.lock`` files, which is what lets them share one build.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from envplane.errors import InvalidArgument

PROJECT_NAME = "envplane-env"


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    source: str


def pyproject_template(python_version: str) -> str:
    """A virtual (non-installable) project pinned to the interpreter's minor version."""
    major_minor = ".".join(python_version.split(".")[:2])
    return (
        "[project]\n"
        f'name = "{PROJECT_NAME}"\n'
        'version = "0.0.0"\n'
        f'requires-python = "=={major_minor}.*"\n'
        "dependencies = []\n"
        "\n"
        "[tool.uv]\n"
        "package = false\n"
    )


def declared_dependencies(pyproject_text: str) -> list[str]:
    return list(_declared(pyproject_text))


@functools.lru_cache(maxsize=256)
def _declared(pyproject_text: str) -> tuple[str, ...]:
    """Parsed once per distinct pyproject: every view of an env renders its dependencies."""
    if not pyproject_text:
        return ()
    data = tomllib.loads(pyproject_text)
    return tuple(data.get("project", {}).get("dependencies", []))


def requires_python(pyproject_text: str) -> str:
    """The project's ``requires-python`` ("" when it has none)."""
    value = tomllib.loads(pyproject_text).get("project", {}).get("requires-python", "")
    return str(value).replace(" ", "")


# Lock sources envplane installs from: an index (or find-links folder), and the project itself.
_INDEX_SOURCES = {"registry", "virtual", "editable"}
MAX_PROJECT_FILE_BYTES = 16 * 1024 * 1024


def check_project_files(pyproject_text: str, lock_text: str, *, allow_direct_references: bool) -> list[str]:
    """Check a pyproject.toml + uv.lock given to create from; return the declared dependencies.

    Both must be TOML, the pyproject must have a ``[project]`` table, and unless direct
    references are allowed every locked package must come from an index: a lock naming a git
    repository, a URL or a local path would make uv fetch what the operator did not allow."""
    if not pyproject_text or not lock_text:
        missing = "uv_lock" if pyproject_text else "pyproject_toml"
        raise InvalidArgument(f"{missing} is required to create from a project (give pyproject_toml and uv_lock)")
    parsed: dict[str, dict[str, object]] = {}
    for name, text in (("pyproject_toml", pyproject_text), ("uv_lock", lock_text)):
        if len(text.encode()) > MAX_PROJECT_FILE_BYTES:
            raise InvalidArgument(f"{name} is larger than {MAX_PROJECT_FILE_BYTES} bytes")
        try:
            parsed[name] = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidArgument(f"{name} is not valid TOML: {exc}") from exc
    project = parsed["pyproject_toml"].get("project")
    if not isinstance(project, dict):
        raise InvalidArgument("pyproject_toml has no [project] table")
    packages = parsed["uv_lock"].get("package", [])
    if not isinstance(packages, list) or not packages:
        raise InvalidArgument("uv_lock locks no packages: it is not a uv.lock file")
    if not allow_direct_references:
        for package in packages:
            source = package.get("source", {}) if isinstance(package, dict) else {}
            kinds = set(source) if isinstance(source, dict) else {"?"}
            if not kinds <= _INDEX_SOURCES or source.get("editable", ".") != ".":
                raise InvalidArgument(
                    f"uv_lock: package {package.get('name')!r} comes from {source}, not from an index; "
                    "direct references are disabled on this server (setting allow_direct_references)"
                )
    dependencies = project.get("dependencies", [])
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise InvalidArgument("pyproject_toml: [project].dependencies must be a list of requirement strings")
    return dependencies


def locked_requirements(lock_text: str) -> list[str]:
    """The requirements the lock was made for: its root package's ``requires-dist``."""
    for package in tomllib.loads(lock_text).get("package", []):
        source = package.get("source", {})
        if not ({"virtual", "editable"} & set(source)) or source.get("virtual", source.get("editable")) != ".":
            continue
        out = []
        for item in package.get("metadata", {}).get("requires-dist", []):
            extras = f"[{','.join(item['extras'])}]" if item.get("extras") else ""
            marker = f"; {item['marker']}" if item.get("marker") else ""
            out.append(f"{item['name']}{extras}{item.get('specifier', '')}{marker}")
        return out
    return []


def declared_names(pyproject_text: str) -> dict[str, str]:
    """Canonical name -> declared spec."""
    out: dict[str, str] = {}
    for spec in declared_dependencies(pyproject_text):
        try:
            out[canonicalize_name(Requirement(spec).name)] = spec
        except InvalidRequirement:
            continue
    return out


def locked_packages(lock_text: str) -> list[LockedPackage]:
    return list(_parse_lock(lock_text))


@functools.lru_cache(maxsize=128)
def _parse_lock(lock_text: str) -> tuple[LockedPackage, ...]:
    """Parsed once per distinct lock: identical specs share locks, and a 20 KB lock takes
    ~7 ms to parse, a third of the identical-spec create."""
    if not lock_text:
        return ()
    data = tomllib.loads(lock_text)
    out = []
    for package in data.get("package", []):
        if package.get("name") == PROJECT_NAME:
            continue
        source = package.get("source", {})
        where = next(iter(source.values()), "") if isinstance(source, dict) else str(source)
        out.append(LockedPackage(package["name"], str(package.get("version", "")), str(where)))
    return tuple(sorted(out, key=lambda p: p.name))


def version_changes(old_lock: str, new_lock: str) -> dict[str, list[str]]:
    """``{name: [old_version, new_version]}`` for every package added, removed or changed."""
    old = {p.name: p.version for p in locked_packages(old_lock)}
    new = {p.name: p.version for p in locked_packages(new_lock)}
    return {
        name: [old.get(name, ""), new.get(name, "")]
        for name in sorted(old.keys() | new.keys())
        if old.get(name) != new.get(name)
    }


# uv's advice to pass one of its flags ("provide the `--frozen` flag", "try: `--prerelease=allow`")
# or to run uv itself ("run `uv lock`"): users cannot do either through envplane, so such
# hints only mislead.
_FLAG_HINT = re.compile(r"`-{1,2}[a-z][\w-]*|--[a-z][\w-]*|`uv [a-z]")


def without_flag_hints(output: str) -> str:
    """uv's output without the hint lines (and their indented continuations) that name uv flags
    or uv commands."""
    kept: list[str] = []
    dropping = False
    for line in output.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("hint:"):
            dropping = bool(_FLAG_HINT.search(stripped))
        elif dropping and line[:1] in (" ", "\t") and stripped:
            pass  # the same hint, wrapped
        else:
            dropping = False
        if not dropping:
            kept.append(line)
    return "".join(kept)


def uv_error_headline(stderr: str, fallback: str) -> str:
    """The most telling line of uv's error output, for the short message: the resolver's
    explanation ("Because ..."), else the error with its first cause ("Failed to add
    dependencies: Failed to build `x==1.0`"), else the last line."""
    lines = [line.strip() for line in without_flag_hints(stderr).splitlines() if line.strip()]

    def bare(line: str) -> str:
        for noise in ("╰─▶", "error:", "cause:"):
            line = line.removeprefix(noise).strip()
        return line

    for prefix in ("cause: Because", "Because", "╰─▶"):
        for line in lines:
            if line.startswith(prefix):
                return bare(line)
    for index, line in enumerate(lines):
        if line.startswith("error:"):
            following = lines[index + 1] if index + 1 < len(lines) else ""
            return f"{bare(line)}: {bare(following)}" if following.startswith("cause:") else bare(line)
    for line in lines:
        if line.startswith("cause:"):
            return bare(line)
    return lines[-1] if lines else fallback
