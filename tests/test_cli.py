"""User errors stop the command with one line naming the key or file, before any work."""

import argparse
import json
import re
import shutil
import sys

import pytest
import yaml

from fourds.cli import build_parser, main
from tests.conftest import REPO_ROOT, doc_blocks, doc_commands, one_error_line, run_fourds, sh


def pretrain(params, *extra: str) -> int:
    return main(["pretrain", "--params", str(params), *extra])


def test_invalid_param_stops_before_work_with_the_key_path(tmp_path, capsys):
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    raw["models"]["cpu_s"].update(width=100, heads=3)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    code = pretrain(params, "--scale", "cpu_s", "--out", str(out))
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "fourds pretrain: error: models.cpu_s.width=100 is not divisible by models.cpu_s.heads=3"
    )
    assert not out.exists()


def test_unknown_scale_is_named(tmp_path, capsys):
    code = pretrain(REPO_ROOT / "params.yaml", "--scale", "giant", "--out", str(tmp_path))
    assert code == 2
    assert "scale 'giant' is not defined under models" in capsys.readouterr().err


def test_missing_shards_name_the_fix(tmp_path, capsys):
    curated, out = str(tmp_path / "none"), str(tmp_path / "out")
    code = pretrain(
        REPO_ROOT / "params.yaml", "--scale", "cpu_s", "--curated", curated, "--out", out
    )
    assert code == 2
    assert "run `dvc repro curate` first" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_readme_zoo_runs_as_written_and_prints_what_it_shows(monkeypatch, capsys):
    """README, "Model zoo": each ladder's models counted at that ladder's own clip, as the
    stages count them (the pretrain stage's metrics.json records the same parameters)."""
    monkeypatch.chdir(REPO_ROOT)
    (zoo,) = doc_commands("Model zoo", page="README.md")
    assert run_fourds(zoo) == 0
    out = capsys.readouterr().out
    assert "ladder embedded: input 8x64x64, its own" in out
    assert "ladder 4ds: input 16x224x224" in out and "21,762,963,456" in out
    for scale in ("cpu_s", "cpu_l"):
        pinned = json.loads((REPO_ROOT / "runs/pretrain" / scale / "metrics.json").read_text())
        (row,) = [line for line in out.splitlines() if line.startswith(f"{scale} ")]
        assert f"{pinned['params']:,}" in row, (row, pinned["params"])
    shown = [block.text for block in doc_blocks("README.md") if block.section == "Model zoo"]
    assert out == shown[1]  # the block after the command


def test_zoo_says_at_which_input_it_counts(monkeypatch, capsys):
    monkeypatch.chdir(REPO_ROOT)
    assert main(["zoo", "--frames", "8", "--size", "64"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("input 8x64x64 for every model (`fourds zoo --ladders`: each ladder")
    (row,) = [line for line in out.splitlines() if line.startswith("cpu_s ")]
    assert "508,896" in row  # at the embedded ladder's own clip: the pinned count


def test_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    (version,) = re.findall(r'^version = "(.+)"$', (REPO_ROOT / "pyproject.toml").read_text(), re.M)
    assert capsys.readouterr().out == f"fourds {version}\n"


def test_bf16_on_cpu_is_refused_before_any_work(tmp_path, capsys):
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    raw["pretrain"]["precision"] = "bf16"
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    assert pretrain(params, "--scale", "cpu_s", "--out", str(tmp_path / "out")) == 2
    assert "pretrain.precision='bf16' needs CUDA" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """name -> parser of each subcommand of `parser`."""
    (commands,) = [
        action for action in parser._actions if action.choices and action.dest == "command"
    ]
    return commands.choices


def test_every_subcommand_help_says_what_it_does_and_shows_the_defaults():
    commands = subcommands(build_parser())
    for name, command in commands.items():
        text = command.format_help()
        assert command.description and command.description in " ".join(text.split()), name
        for action in command._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, (name, action.dest)  # every option explained
        assert "(default:" in text, name
    plan_help = " ".join(commands["plan"].format_help().split())
    assert "(default: h100)" in plan_help and "(default: 256)" in plan_help


def test_the_plan_choices_are_the_clusters_names():
    from fourds.cli import PLAN_GPUS, PLAN_INTERCONNECTS
    from fourds.plan.cluster import GPUS, INTERCONNECTS

    assert sorted(PLAN_GPUS) == sorted(GPUS) and sorted(PLAN_INTERCONNECTS) == sorted(INTERCONNECTS)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["plan", "--gpu", "v100"])


def test_build_parser_has_every_subcommand_of_the_table_and_each_help_exits_0(capsys):
    from fourds.cli import COMMANDS

    parser = build_parser()
    assert list(subcommands(parser)) == [command.name for command in COMMANDS]
    for command in COMMANDS:
        with pytest.raises(SystemExit) as exited:
            parser.parse_args([command.name, "--help"])
        assert exited.value.code == 0, command.name
        assert f"usage: fourds {command.name}" in capsys.readouterr().out


def test_every_error_fourds_defines_is_in_errors_and_reported_in_one_line():
    """fourds.errors holds every exception class under src/fourds, and `fourds` catches each."""
    import ast

    from fourds import errors
    from fourds.cli import EXPECTED

    defined = set()
    for path in (REPO_ROOT / "src/fourds").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            bases = [getattr(base, "id", "") for base in getattr(node, "bases", [])]
            public = isinstance(node, ast.ClassDef) and not node.name.startswith("_")
            if public and any(b.endswith(("Error", "Exception")) for b in bases):
                assert path.name == "errors.py", f"{node.name} is defined in {path}"
                defined.add(node.name)
    assert defined >= {error.__name__ for error in errors.EXPECTED_ERRORS}
    assert all(issubclass(getattr(errors, name), errors.EXPECTED_ERRORS) for name in defined)
    assert set(errors.EXPECTED_ERRORS) <= set(EXPECTED)
    assert RuntimeError not in EXPECTED and ValueError not in EXPECTED


def test_a_command_loads_only_the_modules_it_uses(tmp_path):
    """`fourds params` does not load the checkpoint machinery (torch.distributed.checkpoint,
    about two seconds of every command's start before), also where it stops on an error."""
    out = str(tmp_path / "params.yaml")
    script = (
        "import sys; from fourds.cli import main; "
        f"assert main(['params', 'pretrain.precision=bogus', '--out', {out!r}]) == 2; "
        f"main(['params', '--out', {out!r}]); "
        "print('torch.distributed.checkpoint' in sys.modules)"
    )
    loaded = sh(sys.executable, "-c", script, cwd=REPO_ROOT).split()[-1]
    assert loaded == "False"


def test_a_checkpoint_error_is_one_line(tmp_path, capsys):
    (tmp_path / "step-00000010").mkdir()  # a checkpoint folder with nothing in it
    code = main(
        [
            "export",
            "--params",
            str(REPO_ROOT / "params.yaml"),
            "--scale",
            "cpu_s",
            "--checkpoint",
            str(tmp_path / "step-00000010"),
            "--out",
            str(tmp_path / "w.pt"),
        ]
    )
    assert code == 2
    error = capsys.readouterr().err
    assert error.startswith("fourds export: error: ") and error.count("\n") == 1, error


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--frames", "-4"], "the world's frames must be in [1, 1024], not -4"),
        (["--size", "-32"], "the world's size must be in [8, 512], not -32"),
        (["--size", "100000"], "the world's size must be in [8, 512], not 100000"),
        (["--seed", str(2**64)], f"the world's seed must be in [0, {2**63 - 1}], not {2**64}"),
        (["--seed", "-1"], "the world's seed must be in [0,"),
    ],
)
@pytest.mark.parametrize("renderer", ["numpy", "batched"])
def test_synth_checks_the_world_before_any_work(options, says, renderer, tmp_path, capsys):
    out = tmp_path / "corpus"
    assert main(["synth", "--renderer", renderer, "--out", str(out), *options]) == 2
    assert says in one_error_line(capsys.readouterr().err, "synth")
    assert not out.exists()  # nothing written


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (["pretrain.seed=-1"], "pretrain.seed"),
        ([f"pretrain.seed={2**64}"], "pretrain.seed"),
        (
            ["pretrain.source=world", "pretrain.crop_scale=[1.0,1.0]", "curate.clip_frames=2048"],
            "pretrain.source='world' would render 536,870,912 rays a step",
        ),
        (
            ["pretrain.source=world", "pretrain.crop_scale=[1.0,1.0]", "curate.resolution=4096"],
            "at most 268,435,456; lower one of them",
        ),
    ],
)
def test_params_refuse_seeds_and_world_sizes_out_of_range(overrides, says, tmp_path, capsys):
    shutil.copytree(REPO_ROOT / "experiments", tmp_path / "experiments")
    command = ["params", *overrides, "--experiments", str(tmp_path / "experiments")]
    assert main([*command, "--out", str(tmp_path / "params.yaml")]) == 2
    assert says in one_error_line(capsys.readouterr().err, "params")
    assert not (tmp_path / "params.yaml").exists()
