"""Prompt templates: every packaged template parses, renders, and carries its version."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernelwright.prompts.library import PromptError, PromptLibrary, parse_template
from support.paths import ROOT


def test_packaged_templates_load_and_render() -> None:
    library = PromptLibrary()
    assert {"translator", "mutator", "crossover", "critic", "repair", "screen"} <= set(library.names())
    for name in library.names():
        template = library.get(name)
        rendered = template.render(**{v: f"<{v}>" for v in template.variables})
        assert rendered.tag == f"{name}@v{template.version}" and len(rendered.sha256) == 64
        for v in template.variables:
            assert f"<{v}>" in rendered.system + rendered.user


def test_cuda_braces_survive_rendering() -> None:
    template = PromptLibrary().get("repair")
    rendered = template.render(gpu="H100", problem_source="p", candidate_source="__global__ void k() { if (x) { y(); } }",
                               failure="wrong_output", diagnostics="(none)")
    assert "{ if (x) { y(); } }" in rendered.user


def test_missing_and_unexpected_variables_are_errors() -> None:
    template = PromptLibrary().get("reask_syntax")
    with pytest.raises(PromptError, match="missing \\['error'\\]"):
        template.render(line=3)
    with pytest.raises(PromptError, match="unexpected \\['bogus'\\]"):
        template.render(line=3, error="y", bogus=1)


def test_every_template_is_asked_for_by_production_code_and_every_ask_has_a_template() -> None:
    """Prompts are template files, and each one is used: the agents name them (ctx.prompts.get("...")), and a
    malformed answer's re-ask prompt is named after its problem (AnswerError.reask_template)."""
    import re
    from typing import get_args

    from kernelwright.agents.answer_parsing import AnswerError, AnswerProblem

    asked = {name for path in (ROOT / "agents").rglob("*.py")
             for name in re.findall(r"prompts\.get\(\"(\w+)\"\)", path.read_text())}
    asked |= {AnswerError(problem, "m").reask_template for problem in get_args(AnswerProblem)}
    assert asked == set(PromptLibrary().names())


def test_the_repair_node_uses_the_repair_template() -> None:
    from kernelwright.graphs.nodes import REPAIR

    source = (ROOT / "agents" / "mutator.py").read_text()
    assert f'prompts.get("{REPAIR}")' in source and PromptLibrary().get(REPAIR).variables[-1] == "diagnostics"


def test_header_and_placeholders_are_checked(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="header"):
        parse_template("no header", tmp_path / "a.md")
    bad = "---\nname: a\nversion: 1\nvariables: x\n---\n## user\n$x and $y\n"
    with pytest.raises(PromptError, match="do not match"):
        parse_template(bad, tmp_path / "a.md")
    with pytest.raises(PromptError, match="no prompt template named"):
        PromptLibrary().get("nope")
