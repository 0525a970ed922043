"""Ops and problems the offline translator can't handle are reported (typed, with the ops), never a crash;
partially supported problems keep the rest as ATen and say which ops they kept."""

from __future__ import annotations

import pytest

from kernelwright.agents.offline import OfflineUnsupported, propose
from kernelwright.tools.errors import KernelwrightError
from support.offline import FIXTURES


def test_untraceable_problem_is_reported_with_the_reason() -> None:
    with pytest.raises(OfflineUnsupported) as info:
        propose(FIXTURES / "problems" / "data_dependent.py")
    err = info.value
    assert isinstance(err, KernelwrightError) and "torch.export failed" in err.message
    assert err.to_dict()["kind"] == "offline_unsupported"


def test_problem_with_only_an_unsupported_op_names_it() -> None:
    with pytest.raises(OfflineUnsupported) as info:
        propose(FIXTURES / "offline" / "only_sort.py")
    assert info.value.ops == ("aten.sort.default",)
    assert "no kernel of its own" in info.value.message
    assert info.value.to_dict()["details"]["ops"] == ["aten.sort.default"]


def test_partial_translation_keeps_the_unsupported_op_as_aten() -> None:
    candidates = propose(FIXTURES / "offline" / "partial_support.py")
    assert candidates and all(c.kept_aten_ops == ("aten.sort.default",) for c in candidates)
    fused = candidates[0]
    assert "torch.ops.aten.sort.default(" in fused.source  # the sort runs on the host ...
    assert fused.source.count("_kw_lib.kw_launch_") == 2  # ... between the two fused chains
    assert "aten.sort.default" in fused.source.split('"""')[1]  # and the header says so


def test_broken_problem_file_is_reported_not_raised_raw(tmp_path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\nclass Model(torch.nn.Module):\n    def forward(self, x):\n        return x\n"
                   "def get_inputs():\n    raise ValueError('no inputs')\ndef get_init_inputs():\n    return []\n")
    with pytest.raises(OfflineUnsupported) as info:
        propose(bad)
    assert "cannot load the problem" in info.value.message


def test_proposals_are_deterministic() -> None:
    a = propose(FIXTURES / "offline" / "views_broadcast.py")
    b = propose(FIXTURES / "offline" / "views_broadcast.py")
    assert [c.source for c in a] == [c.source for c in b]
    assert [c.variant for c in a] == ["fused", "fused_scalar", "aten_reductions"]


def test_offline_package_imports_no_langgraph_or_langchain() -> None:
    import subprocess
    import sys

    code = ("import sys, kernelwright.agents.offline, kernelwright.agents.offline.tune; "
            "bad = [m for m in sys.modules if m.startswith(('langgraph', 'langchain'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
