"""A command's heavy libraries, imported first with the cyclic collector paused, then frozen."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

import fourds.cli
from fourds.cli import COMMANDS, STAGES, main
from fourds.startup import TRAINING, collector_paused

# In a fresh interpreter: fractions (a module nothing there imports yet) through import_frozen,
# twice, beside a collector that was on, then off
PROBE = """
import gc, json, sys
from fourds.startup import import_frozen
seen = {"before": "fractions" in sys.modules, "frozen_before": gc.get_freeze_count()}
import_frozen(["fractions"])
seen.update(imported="fractions" in sys.modules, enabled=gc.isenabled(),
            frozen=gc.get_freeze_count())
import_frozen(["fractions"])  # imported already: nothing happens
seen["frozen_again"] = gc.get_freeze_count()
gc.disable()
import_frozen(["decimal"])
seen["left_disabled"] = not gc.isenabled()
print(json.dumps(seen))
"""


def test_the_imports_run_with_the_collector_paused_then_what_is_alive_is_frozen():
    seen = json.loads(
        subprocess.run(
            [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
        ).stdout
    )
    assert not seen["before"] and seen["imported"] and seen["enabled"]
    assert seen["frozen"] > seen["frozen_before"]  # the module's objects, out of the collector's
    assert seen["frozen_again"] == seen["frozen"]
    assert seen["left_disabled"]  # a collector paused by the caller stays paused


# The same where torch sees a GPU (here, told so): the import runs paused, nothing is frozen
ON_A_GPU = """
import gc, sys, torch
from fourds.startup import import_frozen
torch.cuda.is_available = lambda: True
before = gc.get_freeze_count()
import_frozen(["fractions"])
print("fractions" in sys.modules and gc.isenabled() and gc.get_freeze_count() == before)
"""


def test_where_torch_sees_a_gpu_nothing_is_frozen():
    ran = subprocess.run([sys.executable, "-c", ON_A_GPU], capture_output=True, text=True)
    assert ran.returncode == 0 and ran.stdout.strip() == "True", ran.stdout + ran.stderr


def test_the_collector_is_off_inside_and_as_it_was_after():
    was = gc.isenabled()
    try:
        for before in (True, False):
            (gc.enable if before else gc.disable)()
            with collector_paused():
                assert not gc.isenabled()
            assert gc.isenabled() == before
    finally:
        (gc.enable if was else gc.disable)()


def test_a_stage_imports_its_libraries_before_its_handler_runs(monkeypatch, tmp_path, capsys):
    imported = []
    monkeypatch.setattr(fourds.cli, "import_frozen", imported.append)
    missing = str(tmp_path / "missing.yaml")
    assert main(["pretrain", "--params", missing, "--scale", "s", "--out", str(tmp_path)]) == 2
    assert imported == [TRAINING] and "missing.yaml" in capsys.readouterr().err
    assert all(command.libraries for command in STAGES if command.name not in {"curate", "report"})
    light = {command.name for command in COMMANDS if not command.libraries}
    assert {"params", "answer", "experiments"} <= light  # these start without torch
