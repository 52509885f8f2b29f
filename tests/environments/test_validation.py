"""Ids, package specs, requirements files and page tokens: what is refused, and how it is said."""

from __future__ import annotations

import pytest

from envplane.core.pagination import decode_token, encode_token, make_page, resolve_window
from envplane.environments.identity import EnvId, validate_id
from envplane.environments.service.interpreters import validate_python_request
from envplane.environments.specs import collect_specs, parse_requirements_text, parse_spec
from envplane.errors import InvalidArgument


@pytest.mark.parametrize("value", ["wf", "ml_pipeline", "rag-2", "v1.2.3", "A" * 128, "0x"])
def test_valid_ids(value: str) -> None:
    assert validate_id("workflow_id", value) == value


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "workflow_id is required"),
        ("..", "not a valid id"),
        (".", "not a valid id"),
        ("../etc", "not a valid id"),
        ("a/b", "not a valid id"),
        (".hidden", "not a valid id"),
        ("-rf", "not a valid id"),
        ("with space", "not a valid id"),
        ("é", "not a valid id"),
        ("A" * 129, "at most 128"),
    ],
)
def test_invalid_ids_name_the_field(value: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_id("workflow_id", value)
    assert "workflow_id" in info.value.message
    assert fragment in info.value.message


def test_env_id_version_is_optional_and_has_its_own_folder() -> None:
    plain = EnvId.parse("wf", "node")
    versioned = EnvId.parse("wf", "node", "v2")
    assert plain.folder_parts == ("wf", "node", "_")
    assert versioned.folder_parts == ("wf", "node", "v2")
    assert str(versioned) == "wf/node@v2"
    with pytest.raises(InvalidArgument, match="node_id"):
        EnvId.parse("wf", "")


@pytest.mark.parametrize("spec", ["httpx", "httpx>=0.27", "rich[jupyter]==13.*", 'foo; python_version >= "3.8"'])
def test_pep508_specs_are_accepted(spec: str) -> None:
    assert parse_spec("packages[0]", spec).name


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("--index-url=http://evil", "command-line option"),
        ("-e .", "command-line option"),
        ("./local/pkg", "URL or a local path"),
        ("/abs/path.whl", "URL or a local path"),
        ("https://example.com/x.whl", "URL or a local path"),
        ("pkg @ https://example.com/x.whl", "direct reference"),
        ("not a spec!!", "not a valid PEP 508"),
        ("", "empty package spec"),
    ],
)
def test_bad_specs_are_refused_with_the_field_named(spec: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_spec("packages[3]", spec)
    assert info.value.message.startswith("packages[3]")
    assert fragment in info.value.message


def test_direct_references_only_when_allowed() -> None:
    spec = parse_spec("packages[0]", "pkg @ https://example.com/pkg.whl", allow_direct_references=True)
    assert spec.url == "https://example.com/pkg.whl"


def test_requirements_text_parsing() -> None:
    text = "# comment\nalpha>=1  # pinned loosely\n\nbeta \\\n  ==1.0.0\n"
    assert [str(r) for r in parse_requirements_text("requirements", text)] == ["alpha>=1", "beta==1.0.0"]
    with pytest.raises(InvalidArgument, match=r"requirements line 2: '--extra-index-url x'"):
        parse_requirements_text("requirements", "alpha\n--extra-index-url x\n")


def test_collect_specs_merges_and_refuses_conflicts() -> None:
    specs = collect_specs(["alpha>=1", "beta"], "alpha>=1\ngamma\n")
    assert [str(s) for s in specs] == ["alpha>=1", "beta", "gamma"]
    with pytest.raises(InvalidArgument, match="given twice"):
        collect_specs(["alpha>=1"], "alpha<1")


@pytest.mark.parametrize("request_", ["3.11", "3", "3.11.7", ">=3.10", "cpython@3.11"])
def test_python_requests_accepted(request_: str) -> None:
    assert validate_python_request(request_) == request_


@pytest.mark.parametrize("request_", ["--python=x", "/usr/bin/python3", "3.11 ; rm", ""])
def test_python_requests_refused(request_: str) -> None:
    with pytest.raises(InvalidArgument, match="python_version"):
        validate_python_request(request_)


def test_page_tokens_round_trip_and_reject_garbage() -> None:
    assert decode_token(encode_token(40)) == 40
    assert decode_token("") == 0
    with pytest.raises(InvalidArgument, match="page_token"):
        decode_token("garbage!")
    with pytest.raises(InvalidArgument, match="page_size"):
        resolve_window(-1, "", default=50, maximum=500)
    with pytest.raises(InvalidArgument, match="page_size"):
        resolve_window(501, "", default=50, maximum=500)
    page = make_page([1, 2], total=5, offset=0, limit=2)
    assert decode_token(page.next_page_token) == 2
    assert make_page([5], total=5, offset=4, limit=2).next_page_token == ""


def test_uv_hints_about_its_own_flags_and_commands_are_dropped() -> None:
    from envplane.environments.service.project import uv_error_headline, without_flag_hints

    output = (
        "error: Failed to resolve\n"
        "  hint: Pre-releases are available for `x` (try: `--prerelease=allow`)\n"
        "    and this line belongs to the same hint\n"
        "hint: To update the lockfile, run `uv lock`.\n"
        "hint: `alpha` was requested with a version the index lacks\n"
        "Because alpha>=5 is unavailable, the requirements are unsatisfiable.\n"
    )
    kept = without_flag_hints(output)
    assert "--prerelease" not in kept and "same hint" not in kept and "uv lock" not in kept
    assert "hint: `alpha` was requested" in kept, "hints without flags or commands stay"
    assert uv_error_headline(output, "?") == "Because alpha>=5 is unavailable, the requirements are unsatisfiable."
    chained = "error: Failed to add dependencies\n  cause: Failed to build `noisy==1.0.0`\n"
    assert uv_error_headline(chained, "?") == "Failed to add dependencies: Failed to build `noisy==1.0.0`"
