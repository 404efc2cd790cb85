"""tests/forked_python.py runs a script or a module as `python` would, in a fork."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.forked_python import run_python

SCRIPT = """
import sys
print("out", sys.argv[1:], __name__)
print("err", file=sys.stderr)
if sys.argv[1] == "exit":
    sys.exit(int(sys.argv[2]))
if sys.argv[1] == "say":
    sys.exit("said")
if sys.argv[1] == "raise":
    raise ValueError("raised")
if sys.argv[1] == "wait":
    import time
    time.sleep(30)
"""


@pytest.mark.parametrize(
    ("args", "status", "err"),
    [
        (["ok"], 0, "err\n"),
        (["exit", "3"], 3, "err\n"),
        (["say"], 1, "err\nsaid\n"),
        (["raise"], 1, "ValueError: raised"),
    ],
)
def test_a_script_runs_as_main_with_its_argv_output_and_exit_status(tmp_path, args, status, err):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    ran = run_python([str(script), *args], tmp_path, timeout=60)
    fresh = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True)
    assert (
        (ran.returncode, ran.stdout)
        == (fresh.returncode, fresh.stdout)
        == (
            status,
            f"out {args} __main__\n",
        )
    )
    assert err in ran.stderr and err in fresh.stderr


def test_a_module_runs_from_the_working_directory_and_a_late_one_is_stopped(tmp_path):
    (tmp_path / "module_here.py").write_text(SCRIPT)
    ran = run_python(["-m", "module_here", "exit", "0"], tmp_path, timeout=60)
    assert (ran.returncode, ran.stdout) == (0, "out ['exit', '0'] __main__\n")
    with pytest.raises(subprocess.TimeoutExpired):
        run_python(["-m", "module_here", "wait"], tmp_path, timeout=0.5)
