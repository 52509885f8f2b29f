"""Package specs: PEP 508 requirements only, checked before uv ever sees them.

A spec that looks like a uv/pip option (``--index-url``), a URL or a local path could make uv
read or fetch something the operator did not allow, so those are refused with a message that
names the field, unless ``allow_direct_references`` is set (then ``name @ URL`` is accepted).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Sequence

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from envplane.errors import InvalidArgument

MAX_SPECS = 500
MAX_SPEC_LENGTH = 1000
MAX_REQUIREMENTS_BYTES = 1_000_000


def _looks_like_path_or_url(text: str) -> bool:
    return (
        text.startswith((".", "/", "~", "\\"))
        or "://" in text
        or text.endswith((".whl", ".tar.gz", ".zip"))
        or (len(text) > 1 and text[1] == ":")
    )


def parse_spec(field: str, text: str, *, allow_direct_references: bool = False) -> Requirement:
    """Parse one PEP 508 requirement or raise ``InvalidArgument`` explaining why not."""
    spec = text.strip()
    if not spec:
        raise InvalidArgument(f"{field}: empty package spec")
    if len(spec) > MAX_SPEC_LENGTH:
        raise InvalidArgument(f"{field}: package spec is longer than {MAX_SPEC_LENGTH} characters")
    if spec.startswith("-"):
        raise InvalidArgument(
            f"{field}: {spec!r} looks like a command-line option; only PEP 508 requirements "
            "such as 'httpx>=0.27' are accepted"
        )
    if _looks_like_path_or_url(spec) and "@" not in spec:
        raise InvalidArgument(
            f"{field}: {spec!r} looks like a URL or a local path; only PEP 508 requirements "
            "such as 'httpx>=0.27' are accepted"
        )
    try:
        requirement = Requirement(spec)
    except InvalidRequirement as exc:
        raise InvalidArgument(f"{field}: {spec!r} is not a valid PEP 508 requirement: {exc}") from exc
    if requirement.url and not allow_direct_references:
        raise InvalidArgument(
            f"{field}: {spec!r} is a direct reference (name @ URL); direct references are "
            "disabled on this server (setting allow_direct_references)"
        )
    return requirement


def parse_requirements_text(field: str, text: str, *, allow_direct_references: bool = False) -> list[Requirement]:
    """Parse requirements.txt content: one requirement per line, ``#`` comments, ``\\`` joins.

    Lines with options (``-r``, ``-e``, ``--index-url``…) are refused, not ignored, so a user
    never believes an option took effect when it did not.
    """
    if len(text.encode()) > MAX_REQUIREMENTS_BYTES:
        raise InvalidArgument(f"{field} is larger than {MAX_REQUIREMENTS_BYTES} bytes")
    joined = text.replace("\\\r\n", "").replace("\\\n", "")
    out: list[Requirement] = []
    for number, raw in enumerate(joined.splitlines(), start=1):
        line = raw.split(" #", 1)[0].split("\t#", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        out.append(parse_spec(f"{field} line {number}", line, allow_direct_references=allow_direct_references))
    return out


def collect_specs(
    packages: Sequence[str],
    requirements: str = "",
    *,
    allow_direct_references: bool = False,
    packages_field: str = "packages",
    requirements_field: str = "requirements",
) -> list[Requirement]:
    """Validate ``packages`` and ``requirements`` together; one spec per distribution name.

    Engines send the same specs again and again (every run provisions its nodes): the answer
    for a given request is kept (errors are not), so parsing costs once per distinct spec."""
    if len(packages) > MAX_SPECS:
        raise InvalidArgument(f"{packages_field}: at most {MAX_SPECS} packages per request")
    return list(_collect(tuple(packages), requirements, allow_direct_references, packages_field, requirements_field))


@functools.lru_cache(maxsize=1024)
def _collect(
    packages: tuple[str, ...],
    requirements: str,
    allow_direct_references: bool,
    packages_field: str,
    requirements_field: str,
) -> tuple[Requirement, ...]:
    if len(packages) > MAX_SPECS:
        raise InvalidArgument(f"{packages_field}: at most {MAX_SPECS} packages per request")
    specs = [
        parse_spec(f"{packages_field}[{i}]", p, allow_direct_references=allow_direct_references)
        for i, p in enumerate(packages)
    ]
    if requirements:
        specs += parse_requirements_text(
            requirements_field, requirements, allow_direct_references=allow_direct_references
        )
    seen: dict[str, str] = {}
    for spec in specs:
        name = canonicalize_name(spec.name)
        if name in seen and seen[name] != str(spec):
            raise InvalidArgument(
                f"package {spec.name!r} is given twice with different specs: {seen[name]!r} and {str(spec)!r}"
            )
        seen[name] = str(spec)
    return tuple(Requirement(s) for s in dict.fromkeys(seen.values()))


def spec_hash(specs: Iterable[Requirement], *parts: str) -> str:
    """A canonical hash of a set of specs plus context (python, index settings)."""
    canonical = sorted(str(s) for s in specs)
    payload = json.dumps({"specs": canonical, "context": list(parts)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()
