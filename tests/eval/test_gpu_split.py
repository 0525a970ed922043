"""Spreading a benchmark over GPUs: argument surgery, core shares, and one child per GPU."""

from __future__ import annotations

import os
import sys

from kernelwright.eval.bench.gpu_split import (
    cpu_shares,
    parse_gpus,
    physical_cores,
    round_robin,
    run_on_gpus,
    without_option,
)


def test_round_robin_and_option_removal() -> None:
    assert round_robin(["a", "b", "c", "d", "e"], 2) == [["a", "c", "e"], ["b", "d"]]
    assert round_robin(["a"], 3) == [["a"], [], []]
    argv = ["--out", "D", "--gpus", "0,1", "--problems=01,02", "--tune-budget", "3", "--compile-baseline"]
    assert without_option(argv, "--gpus", "--problems", "--out") == ["--tune-budget", "3", "--compile-baseline"]
    assert parse_gpus(" 0, 1,,") == ["0", "1"] and parse_gpus("") == []


def test_core_shares_do_not_overlap_and_stay_within_this_process() -> None:
    shares = cpu_shares(2)
    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        assert shares == [None, None]
        return
    mine = os.sched_getaffinity(0)
    assert all(s and set(s) <= mine for s in shares) and not set(shares[0]) & set(shares[1])


def test_core_shares_keep_smt_siblings_together() -> None:
    """16 logical CPUs on 8 cores, siblings (i, i + 8) as cloud hosts number them: contiguous logical shares would
    split every core between two lanes; each share holds whole cores instead."""
    def paired(cpu: int) -> list[int]:
        return [cpu % 8, cpu % 8 + 8]

    two = cpu_shares(2, cpus=range(16), siblings=paired)
    assert two == [[0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]]
    three = cpu_shares(3, cpus=range(16), siblings=paired)
    assert [len(s or []) for s in three] == [4, 4, 4]  # two cores each; the spare core is left out, as before
    for share in three:
        assert share is not None and all(paired(c)[0] in share and paired(c)[1] in share for c in share)
    # more shares than cores: logical CPUs, as without SMT
    assert cpu_shares(3, cpus=[0, 1, 2, 3], siblings=lambda c: [c - c % 2, c - c % 2 + 1]) == [[0], [1], [2]]
    assert cpu_shares(2, cpus=range(4), siblings=lambda c: [c]) == [[0, 1], [2, 3]]
    # a sibling outside this process's CPUs is not added
    assert physical_cores([0, 1, 8], paired) == [[0, 8], [1]]


def test_children_get_their_gpu_and_the_same_interpreter_and_all_are_waited_for() -> None:
    seen = []

    class Child:
        def __init__(self, code: int) -> None:
            self.code = code

        def wait(self) -> int:
            return self.code

    def spawn(command, env, cores):
        seen.append((command, env["CUDA_VISIBLE_DEVICES"]))
        return Child(len(seen) - 1)

    codes = run_on_gpus("kernelwright.eval.bench.offline", [["--out", "A"], ["--out", "B"]], ["2", "5"], spawn)
    assert codes == [0, 1]
    assert [gpu for _, gpu in seen] == ["2", "5"]
    assert all(cmd[0] == sys.executable and cmd[cmd.index("-m") + 1] == "kernelwright.eval.bench.offline"
               for cmd, _ in seen)


def test_a_real_child_process_sees_its_gpu_and_its_cores(tmp_path) -> None:
    """No GPU needed: the child only reports what it was given."""
    script = tmp_path / "kw_probe_child.py"
    script.write_text("import os, sys\nopen(sys.argv[1], 'w').write(os.environ['CUDA_VISIBLE_DEVICES'] + ' ' + "
                      "str(len(os.sched_getaffinity(0))))\n")
    out = tmp_path / "probe.txt"
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{env_path}" if env_path else str(tmp_path)
    try:
        assert run_on_gpus("kw_probe_child", [[str(out)]], ["7"]) == [0]
    finally:
        if env_path:
            os.environ["PYTHONPATH"] = env_path
        else:
            del os.environ["PYTHONPATH"]
    gpu, cores = out.read_text().split()
    assert gpu == "7" and int(cores) == len(os.sched_getaffinity(0))  # one share of one = every core
