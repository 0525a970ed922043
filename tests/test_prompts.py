"""Prompt templates: every packaged template parses, renders, and carries its version."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernelwright.prompts.library import PromptError, PromptLibrary, parse_template


def test_packaged_templates_load_and_render() -> None:
    library = PromptLibrary()
    assert {"translator", "mutator", "crossover", "critic", "repair"} <= set(library.names())
    for name in library.names():
        template = library.get(name)
        rendered = template.render(**{v: f"<{v}>" for v in template.variables})
        assert rendered.tag == f"{name}@v{template.version}" and len(rendered.sha256) == 64
        for v in template.variables:
            assert f"<{v}>" in rendered.system + rendered.user


def test_cuda_braces_survive_rendering() -> None:
    template = PromptLibrary().get("repair")
    rendered = template.render(candidate_source="__global__ void k() { if (x) { y(); } }", failure="wrong_output")
    assert "{ if (x) { y(); } }" in rendered.user


def test_missing_and_unexpected_variables_are_errors() -> None:
    template = PromptLibrary().get("repair")
    with pytest.raises(PromptError, match="missing \\['failure'\\]"):
        template.render(candidate_source="x")
    with pytest.raises(PromptError, match="unexpected \\['bogus'\\]"):
        template.render(candidate_source="x", failure="y", bogus=1)


def test_header_and_placeholders_are_checked(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="header"):
        parse_template("no header", tmp_path / "a.md")
    bad = "---\nname: a\nversion: 1\nvariables: x\n---\n## user\n$x and $y\n"
    with pytest.raises(PromptError, match="do not match"):
        parse_template(bad, tmp_path / "a.md")
    with pytest.raises(PromptError, match="no prompt template named"):
        PromptLibrary().get("nope")
