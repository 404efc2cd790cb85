"""Shipped results: `fourds ship` copies a run's results, `fourds compare` finds every number
a regeneration changed."""

from __future__ import annotations

import hashlib
import json
import shutil
import statistics
from pathlib import Path

import pytest
import torch
import yaml

from fourds import layout
from fourds.cli import main
from fourds.config import ConfigError, load_params
from fourds.models.weights import FORMAT, write_payload
from fourds.shipped import compare, format_differences, stage_files
from fourds.tolerances import Contract, Tolerance, load_contract, seed_margins, seed_noise
from tests.conftest import flip_tensor_byte

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
WEIGHTS = {"format": FORMAT, "state_dict": {"encoder.w": torch.arange(6.0)}}


TASKS = tuple(load_params(PARAMS).readout.tasks)


def fake_metrics(stage: str, task: str | None = None, loss: float = 0.25) -> str:
    """A stage's metrics.json (or a readout's metrics/<task>.json: each task's its own)."""
    metrics = {"loss": loss, "baseline": {"loss": 0.5}, "stage": stage}
    return json.dumps(metrics if task is None else {**metrics, "task": task})


def fake_run(root: Path) -> Path:
    """A runs folder with every stage's files of the default ladder (a readout stage per scale
    and regime, every task's metrics/<task>.json and clips/<task>.csv), a lock and a report."""
    params = load_params(PARAMS)
    runs = root / "runs"
    for stage, names in stage_files(params.study_layout()):
        for name in names:
            path = runs / stage / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x\n")
            readout = layout.readout_result(Path(stage) / name)
            if name == "metrics.json" or (readout is not None and path.suffix == ".json"):
                path.write_text(fake_metrics(stage, readout and readout[1]))
            elif readout is not None:
                path.write_text("clip,loss\n0,0.1\n1,0.2\n")
    record = hashlib.sha256(b"x\n").hexdigest()  # of the run.yaml written above
    (runs / "readout/cpu_l-frozen/execution.yaml").write_text(
        f"seconds: 12.5\nrun_record_sha256: {record}\n"
    )
    (runs / "readout/cpu_s-frozen/execution.yaml").write_text(  # another run's
        "seconds: 7.5\nrun_record_sha256: 0000\n"
    )
    for scale in params.ladder.scales:  # weights files with a digest, which ship checks
        write_payload(runs / "pretrain" / scale / "checkpoint.pt", WEIGHTS)
    report = root / "reports/out"
    for folder in ("tables", "figures", "plot_tables"):
        (report / folder).mkdir(parents=True)
    for name in (
        "scaling.html",
        "scaling.ipynb",
        "tables/scaling_depth.csv",
        "plot_tables/plot_depth.csv",
    ):
        (report / name).write_text("report\n")
    stages = ["curate", "pretrain@cpu_s", "readout@cpu_l-frozen", "report"]
    stages += ["pretrain@smoke_s", "readout@smoke_s-frozen"]  # another ladder's
    lock = {"schema": "2.0", "stages": {name: {"cmd": f"run {name}"} for name in stages}}
    (root / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    return runs


def ship_args(root: Path) -> list[str]:
    return [
        "ship", "--params", str(PARAMS), "--lock", str(root / "dvc.lock"), "--runs",
        str(root / "runs"), "--report", str(root / "reports/out"), "--out", str(root / "shipped"),
    ]  # fmt: skip


def test_ship_copies_results_lock_report_and_checkpoints(tmp_path):
    runs = fake_run(tmp_path)
    assert main(ship_args(tmp_path)) == 0
    shipped = tmp_path / "shipped"
    lock = yaml.safe_load((shipped / "dvc.lock").read_text())
    assert list(lock["stages"]) == [
        "curate", "pretrain@cpu_s", "readout@cpu_l-frozen", "report"
    ]  # fmt: skip
    assert (shipped / "params.yaml").read_bytes() == PARAMS.read_bytes()
    readout = shipped / "readout/cpu_l-initial"
    shipped_files = {p.relative_to(readout).as_posix() for p in readout.rglob("*") if p.is_file()}
    assert shipped_files == {
        *(f"metrics/{task}.json" for task in TASKS), *(f"clips/{task}.csv" for task in TASKS),
        "run.yaml",
    }  # fmt: skip
    # the execution record that belongs to its stage's run record is shipped; another run's not
    timed = shipped / "readout/cpu_l-frozen/execution.yaml"
    assert timed.read_text().startswith("seconds: 12.5\n")
    assert not (shipped / "readout/cpu_s-frozen/execution.yaml").exists()
    assert (shipped / "pretrain/cpu_s/loss.csv").is_file()
    checkpoint = (runs / "pretrain/cpu_l/checkpoint.pt").read_bytes()
    assert (shipped / "checkpoints/cpu_l.pt").read_bytes() == checkpoint
    assert (shipped / "report/tables/scaling_depth.csv").is_file()
    assert (shipped / "report/plot_tables/plot_depth.csv").is_file()  # the plots' data
    assert compare(shipped, runs) == []


def test_ship_refuses_a_damaged_checkpoint_and_ships_nothing(tmp_path):
    runs = fake_run(tmp_path)
    flip_tensor_byte(runs / "pretrain/cpu_s/checkpoint.pt")
    assert main(ship_args(tmp_path)) == 2
    assert not (tmp_path / "shipped").exists()


def test_compare_names_every_number_that_moved_and_every_missing_file(tmp_path):
    runs = fake_run(tmp_path)
    main(ship_args(tmp_path))
    metrics = runs / "readout/cpu_s-frozen/metrics/depth.json"
    moved = {"loss": 0.25, "baseline": {"loss": 0.51}, "stage": "moved", "task": "depth"}
    metrics.write_text(json.dumps(moved))
    (runs / "readout/cpu_l-frozen/clips/boxes.csv").write_text("clip,loss\n0,0.1\n1,0.3\n")
    (runs / "fidelity/cpu_l/metrics.json").unlink()

    differences = compare(tmp_path / "shipped", runs)
    found = {(d.path, d.key, d.shipped, d.regenerated) for d in differences}
    assert found == {
        ("readout/cpu_s-frozen/metrics/depth.json", "baseline.loss", "0.5", "0.51"),
        ("readout/cpu_s-frozen/metrics/depth.json", "stage", "readout/cpu_s-frozen", "moved"),
        ("readout/cpu_l-frozen/clips/boxes.csv", "loss, row 1", "0.2", "0.3"),
        ("fidelity/cpu_l/metrics.json", "(file)", "present", "missing"),
    }
    assert (
        compare(tmp_path / "shipped", runs, Contract.uniform(0.02)) != differences
    )  # 0.01 is within
    table = format_differences(differences).splitlines()
    assert table[0].split() == ["path", "metric", "shipped", "regenerated"]
    assert any(line.split()[:2] == ["fidelity/cpu_l/metrics.json", "(file)"] for line in table)


def test_compare_command_prints_nothing_when_all_match_and_exits_1_otherwise(tmp_path, capsys):
    runs = fake_run(tmp_path)
    main(ship_args(tmp_path))
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "shipped"), "--runs", str(runs)]) == 0
    assert capsys.readouterr().out == ""
    (runs / "curate/metrics.json").write_text(json.dumps({"loss": 0.3}))
    assert main(["compare", str(tmp_path / "shipped"), "--runs", str(runs)]) == 1
    assert "curate/metrics.json" in capsys.readouterr().out


def test_compare_of_a_partial_regeneration_reads_only_the_stages_it_ran(tmp_path, capsys):
    runs = fake_run(tmp_path)
    main(ship_args(tmp_path))
    shutil.rmtree(runs / "fidelity")
    (runs / "readout/cpu_s-frozen/clips/depth.csv").unlink()
    compare_partial = ["compare", str(tmp_path / "shipped"), "--runs", str(runs)]
    compare_partial.append("--only-regenerated")
    capsys.readouterr()
    assert main(compare_partial) == 1  # a stage that ran lacks a file: still named
    assert capsys.readouterr().out.count("(file)") == 1
    shutil.copy2(
        tmp_path / "shipped/readout/cpu_s-frozen/clips/depth.csv",
        runs / "readout/cpu_s-frozen/clips",
    )
    assert main(compare_partial) == 0 and capsys.readouterr().out == ""
    assert main(compare_partial[:-1]) == 1  # without the flag, the missing fidelity stages
    assert "fidelity/cpu_s/metrics.json" in capsys.readouterr().out


def test_ship_refuses_a_folder_it_did_not_write_and_compare_a_folder_without_results(tmp_path):
    fake_run(tmp_path)
    (tmp_path / "shipped").mkdir()
    (tmp_path / "shipped/notes.txt").write_text("mine")
    assert main(ship_args(tmp_path)) == 2
    assert (tmp_path / "shipped/notes.txt").read_text() == "mine"
    assert main(["compare", str(tmp_path / "runs")]) == 2


def test_ship_names_the_stages_without_results(tmp_path, capsys):
    fake_run(tmp_path)
    (tmp_path / "runs/readout/cpu_s-frozen/metrics/depth.json").unlink()  # its results first
    assert main(ship_args(tmp_path)) == 0
    assert "readout/cpu_s-frozen" in capsys.readouterr().err
    assert not (tmp_path / "shipped/readout/cpu_s-frozen").exists()


def test_ship_names_a_report_that_has_not_run_though_its_folder_exists(tmp_path, capsys):
    fake_run(tmp_path)
    shutil.rmtree(tmp_path / "reports/out")
    (tmp_path / "reports/out").mkdir()
    (tmp_path / "reports/out/.gitignore").write_text("/scaling.html\n")  # as DVC leaves it
    assert main(ship_args(tmp_path)) == 0
    assert "report" in capsys.readouterr().err
    assert not (tmp_path / "shipped/report").exists()


def test_a_contract_holds_each_family_to_its_own_tolerance(tmp_path):
    runs = fake_run(tmp_path)
    main(ship_args(tmp_path))
    moved_by = {
        ("readout/cpu_l-frozen", "pose"): 0.2505,
        ("readout/cpu_l-frozen", "depth"): 0.2505,
        ("pretrain/cpu_l", None): 0.25000001,
    }
    for (stage, task), loss in moved_by.items():
        name = "metrics.json" if task is None else f"metrics/{task}.json"
        (runs / stage / name).write_text(fake_metrics(stage, task, loss))
    (tmp_path / "tolerances.yaml").write_text(
        "pretrain: {relative: 1.0e-6}\nreadout:\n  pose: {relative: 0.01, absolute: 0.0}\n"
    )
    contract = load_contract(tmp_path / "tolerances.yaml")
    assert contract.for_file("readout/cpu_l-frozen/clips/pose.csv") == Tolerance(0.01, 0.0)
    assert contract.for_file("readout/cpu_l-pose-frozen/clips.csv") == Tolerance(0.01, 0.0)
    assert contract.for_file("curate/metrics.json") == Tolerance()  # not named: exact
    moved = {(d.path, d.key) for d in compare(tmp_path / "shipped", runs, contract)}
    assert moved == {("readout/cpu_l-frozen/metrics/depth.json", "loss")}  # depth is exact

    command = ["compare", str(tmp_path / "shipped"), "--runs", str(runs)]
    assert main([*command, "--contract", str(tmp_path / "tolerances.yaml")]) == 1
    assert main([*command, "--tolerance", "0.001"]) == 0


def test_a_tolerance_is_relative_to_the_larger_number_plus_a_floor():
    tolerance = Tolerance(relative=0.1, absolute=0.01)
    assert tolerance.allows(1.0, 1.11) and not tolerance.allows(1.0, 1.13)
    assert tolerance.allows(0.0, 0.01) and not tolerance.allows(0.0, 0.02)
    assert tolerance.allows("nan", float("nan")) and not tolerance.allows(1.0, "nan")
    assert tolerance.allows("frozen", "frozen") and not tolerance.allows("frozen", "random")


def test_a_malformed_contract_is_one_line(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("readout:\n  pose: {relative: -1}\n")
    runs = fake_run(tmp_path)
    main(ship_args(tmp_path))
    command = ["compare", str(tmp_path / "shipped"), "--runs", str(runs)]
    assert main([*command, "--contract", str(tmp_path / "bad.yaml")]) == 2
    assert "readout.pose.relative must be a non-negative number" in capsys.readouterr().err


def test_each_number_of_a_list_is_held_to_the_tolerance_on_its_own(tmp_path):
    for root, seeds in (("shipped", [0.5, 0.25]), ("runs", [0.5000001, 0.3])):
        metrics = layout.ReadoutFiles.of("cpu_l", "depth", "frozen").at(tmp_path / root).metrics
        metrics.parent.mkdir(parents=True)
        metrics.write_text(json.dumps({"seed_headlines": seeds}))
    differences = compare(tmp_path / "shipped", tmp_path / "runs", Contract.uniform(1e-3))
    assert [(d.key, d.shipped, d.regenerated) for d in differences] == [
        ("seed_headlines.1", "0.25", "0.3")
    ]


def test_per_clip_values_may_have_their_own_tolerance(tmp_path):
    (tmp_path / "tolerances.yaml").write_text(
        "readout:\n  pose: {relative: 0.01}\n"
        "readout_clips:\n  pose: {relative: 0.01, absolute: 0.05}\n"
    )
    contract = load_contract(tmp_path / "tolerances.yaml")
    assert contract.for_file("readout/cpu_l-frozen/clips/pose.csv") == Tolerance(0.01, 0.05)
    assert contract.for_file("readout/cpu_l-frozen/metrics/pose.json") == Tolerance(0.01, 0.0)
    assert contract.for_file("readout/cpu_l-frozen/clips/depth.csv") == Tolerance()  # not named
    # a study shipped one task a stage: the same families
    assert contract.for_file("readout/cpu_l-pose-frozen/clips.csv") == Tolerance(0.01, 0.05)
    assert contract.for_file("readout/cpu_l-pose-frozen/metrics.json") == Tolerance(0.01, 0.0)
    assert contract.for_file("readout/cpu_l-depth-frozen/clips.csv") == Tolerance()  # not named


def test_compare_says_when_nothing_was_regenerated_here(tmp_path, capsys):
    runs = fake_run(tmp_path)
    main(ship_args(tmp_path))
    for record in runs.glob("**/execution.yaml"):
        record.unlink()  # as a fresh clone's runs/: the pinned files only
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "shipped"), "--runs", str(runs)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "holds no result regenerated here" in out


def test_a_non_finite_number_matches_only_itself():
    loose = Tolerance(relative=0.5, absolute=1.0)
    inf = float("inf")
    assert loose.allows(inf, "inf") and loose.allows("-inf", -inf)
    assert not loose.allows(0.5, inf) and not loose.allows(inf, 0.5)
    assert not loose.allows(-inf, inf) and not loose.allows("nan", "inf")
    assert not Tolerance(relative=inf).allows(1.0, "-inf")  # `.inf` holds finite numbers only


def test_integers_compare_exactly_whatever_the_tolerance():
    loose = Tolerance(relative=0.1)
    assert loose.allows(96, 96) and loose.allows("12", "12")
    assert not loose.allows(96, 95) and not loose.allows("100", "99")  # counts, clip indices
    assert loose.allows(96.0, 95.5)  # a float that happens to be whole keeps its tolerance


def test_compare_flags_non_finite_results_and_integer_counts_a_tolerance_would_pass(tmp_path):
    runs = fake_run(tmp_path)
    main(ship_args(tmp_path))
    shipped = tmp_path / "shipped"
    (runs / "readout/cpu_l-frozen/metrics/pose.json").write_text(
        fake_metrics("readout/cpu_l-frozen", "pose", float("inf"))
    )
    (runs / "readout/cpu_l-frozen/clips/boxes.csv").write_text("clip,loss\n0,inf\n1,0.2\n")
    for root, count in ((shipped, 96), (runs, 95)):
        (root / "curate/metrics.json").write_text(json.dumps({"test_clips": count}))
    found = {(d.path, d.key) for d in compare(shipped, runs, Contract.uniform(10.0))}
    assert found == {
        ("readout/cpu_l-frozen/metrics/pose.json", "loss"),
        ("readout/cpu_l-frozen/clips/boxes.csv", "loss, row 0"),
        ("curate/metrics.json", "test_clips"),
    }


def test_compare_reports_a_run_of_the_study_the_shipped_folder_lacks(tmp_path):
    runs = fake_run(tmp_path)
    main(ship_args(tmp_path))
    shipped = tmp_path / "shipped"
    shutil.rmtree(shipped / "readout/cpu_s-initial")
    found = {(d.path, d.shipped, d.regenerated) for d in compare(shipped, runs)}
    assert found == {
        (f"readout/cpu_s-initial/{name}", "missing", "present")
        for task in TASKS for name in (f"metrics/{task}.json", f"clips/{task}.csv")
    }  # fmt: skip


def one_task_a_stage(study: Path) -> None:
    """Rewrite the study folder `study` (its readout stages a scale and regime each) as a study
    run before a scale's tasks were read out together: a readout folder per task, holding its
    metrics.json, clips.csv and the stage's run.yaml."""
    params = load_params(PARAMS)
    for scale in params.ladder.scales:
        for regime in params.readout.regimes:
            stage = study / layout.readout(scale, regime).folder
            if not stage.is_dir():
                continue
            for task in params.readout.tasks:
                together = layout.ReadoutFiles.of(scale, task, regime).at(study)
                alone = layout.ReadoutFiles.one_task_a_stage(scale, task, regime).at(study)
                alone.metrics.parent.mkdir(parents=True)
                shutil.copy2(together.metrics, alone.metrics)
                shutil.copy2(together.clips, alone.clips)
                shutil.copy2(stage / "run.yaml", alone.metrics.parent / "run.yaml")
            shutil.rmtree(stage)


def test_a_study_shipped_one_task_a_stage_compares_with_a_regeneration_read_out_together(
    tmp_path,
):
    """A shipped study of the old layout (readout/<scale>-<task>-<regime>/metrics.json and
    clips.csv) against a regeneration holding the same numbers in today's
    (readout/<scale>-<regime>/metrics/<task>.json, clips/<task>.csv): no difference; a number
    the regeneration moved is named by the shipped file's path."""
    runs = fake_run(tmp_path)
    assert main(ship_args(tmp_path)) == 0
    shipped = tmp_path / "shipped"
    one_task_a_stage(shipped)
    assert (shipped / "readout/cpu_l-pose-frozen/metrics.json").is_file()
    assert not (shipped / "readout/cpu_l-frozen").exists()
    assert (runs / "readout/cpu_l-frozen/metrics/pose.json").is_file()
    assert compare(shipped, runs) == []
    assert compare(shipped, runs, only_regenerated=True) == []

    (runs / "readout/cpu_l-frozen/metrics/pose.json").write_text(
        fake_metrics("readout/cpu_l-frozen", "pose", loss=0.3)
    )
    (runs / "readout/cpu_s-initial/clips/boxes.csv").write_text("clip,loss\n0,0.1\n1,0.3\n")
    found = {(d.path, d.key, d.shipped, d.regenerated) for d in compare(shipped, runs)}
    assert found == {
        ("readout/cpu_l-pose-frozen/metrics.json", "loss", "0.25", "0.3"),
        ("readout/cpu_s-boxes-initial/clips.csv", "loss, row 1", "0.2", "0.3"),
    }


def test_damaged_results_and_tolerance_files_are_one_line_naming_them(tmp_path, capsys):
    runs = fake_run(tmp_path)
    main(ship_args(tmp_path))
    command = ["compare", str(tmp_path / "shipped"), "--runs", str(runs)]
    damaged = runs / "readout/cpu_l-frozen/metrics/depth.json"
    damaged.write_text(damaged.read_text()[:10])  # cut short
    capsys.readouterr()
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{damaged}: damaged results file" in err
    damaged.unlink()
    (runs / "readout/cpu_l-frozen/clips/depth.csv").write_text("clip,loss\n0,0.1\n1\n")
    err = capsys.readouterr().err if main(command) == 2 else "compare did not exit 2"
    assert "clips/depth.csv: damaged results file" in err, err
    for text, says in (
        ("- 1\n- 2\n", "must be a mapping of families"),
        ("readout: [1, 2]\n", "readout must map each task"),
        ("pretrain: {relative: true}\n", "pretrain.relative must be a non-negative number"),
    ):
        (tmp_path / "bad.yaml").write_text(text)
        assert main([*command, "--contract", str(tmp_path / "bad.yaml")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err, err


def test_answer_on_a_damaged_results_file_is_one_line_naming_it(tmp_path, capsys):
    """`fourds answer` over a clips.csv cut mid-row or a metrics.json cut short: one line."""
    study = tmp_path / "study"
    shutil.copytree(Path(__file__).resolve().parents[1] / "runs", study / "runs")
    shutil.copy2(PARAMS, study / "params.yaml")
    pinned = layout.ReadoutFiles.of("cpu_l", "depth", "frozen")
    clips = pinned.at(study / "runs").clips
    clips.write_text(clips.read_text()[:300])  # cut mid-row
    command = ["answer", "--params", str(study / "params.yaml"), "--runs", str(study / "runs")]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{clips}: damaged results file" in err
    shutil.copy2(pinned.at(Path(__file__).resolve().parents[1] / "runs").clips, clips)
    metrics = study / "runs/pretrain/cpu_l/metrics.json"
    metrics.write_text(metrics.read_text()[:40])
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{metrics}: damaged results file" in err


@pytest.mark.parametrize(
    ("shipped_layout", "runs_layout"),
    [("one_task_a_stage", "one_task_a_stage"), ("of", "of"), ("one_task_a_stage", "of")],
)
def test_threshold_metrics_may_move_within_their_readout_seeds_noise(
    tmp_path, shipped_layout, runs_layout
):
    """The pinned default's frozen cpu_l tracking readout (three seeds): its pts_within_4 moved
    past tracking's 2% relative tolerance (as a regeneration under AVX2 once moved it 2.0%:
    reports/tolerances.yaml) but within three of its seeds' deviations matches; past the
    margin, or in a family without one, it differs. Shipped and regenerated in either readout
    layout (one task a stage, or a scale's tasks read out together, as pinned)."""
    runs = Path(__file__).resolve().parents[1] / "runs"  # pinned: read out together
    pinned = layout.ReadoutFiles.in_study(runs, "cpu_l", "tracking", "frozen")
    layouts = {"shipped": shipped_layout, "runs": runs_layout}
    in_layout = {
        root: getattr(layout.ReadoutFiles, name)("cpu_l", "tracking", "frozen")
        for root, name in layouts.items()
    }
    for root, files in in_layout.items():
        files = files.at(tmp_path / root)
        files.metrics.parent.mkdir(parents=True, exist_ok=True)
        files.clips.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(pinned.metrics, files.metrics)
        shutil.copy2(pinned.clips, files.clips)
    regenerated = in_layout["runs"].at(tmp_path / "runs").metrics
    metrics = json.loads(regenerated.read_text())
    pinned_value = metrics["pts_within_4"]
    noise = seed_noise(pinned.clips)["pts_within_4"]
    within = pinned_value + 2.9 * noise
    assert within - pinned_value > 0.02 * within  # outside the relative tolerance alone
    contract = load_contract(Path(__file__).resolve().parents[1] / "reports/tolerances.yaml")
    assert contract.for_file(in_layout["shipped"].metrics).seed_margin == 3
    for value, differs in ((within, False), (pinned_value + 3.2 * noise, True)):
        regenerated.write_text(json.dumps({**metrics, "pts_within_4": value}))
        moved = [d.key for d in compare(tmp_path / "shipped", tmp_path / "runs", contract)]
        assert moved == (["pts_within_4"] if differs else []), value
    without = Contract({"readout/tracking": Tolerance(relative=0.02)})
    regenerated.write_text(json.dumps({**metrics, "pts_within_4": within}))
    assert [d.key for d in compare(tmp_path / "shipped", tmp_path / "runs", without)] == [
        "pts_within_4"
    ]


def test_seed_noise_is_the_spread_of_a_difference_of_seed_means(tmp_path):
    clips = tmp_path / "clips.csv"
    rows = ["seed,clip,weight,hit,name"]
    rows += [f"{seed},{clip},1.0,{value},x" for seed, values in enumerate([[0, 1], [1, 1], [0, 0]])
             for clip, value in enumerate(values)]  # fmt: skip
    clips.write_text("\n".join(rows) + "\n")
    means = [0.5, 1.0, 0.0]
    assert seed_noise(clips) == {"hit": pytest.approx((2 / 3) ** 0.5 * statistics.stdev(means))}
    clips.write_text("clip,weight,hit\n0,1.0,1\n1,1.0,0\n")
    assert seed_noise(clips) == {}  # one seed: no margin


def test_a_number_of_one_seed_may_move_as_a_fresh_seed_would(tmp_path):
    """A readout's per-seed numbers (each seed's headline and final loss) move within sqrt(2)
    times their spread over the seeds, seed_margin times; the loss's mean within sqrt(2 / S)
    times; a strided tracking metric within its first-query column's margin."""
    losses, headlines = [3.0, 2.9, 4.3], [0.110, 0.111, 0.093]
    metrics = {"final_train_losses": losses, "seed_headlines": headlines, "final_train_loss": 3.4}
    clips = tmp_path / "clips.csv"
    clips.write_text("seed,clip,weight,hit\n0,0,1.0,0.0\n0,1,1.0,1.0\n1,0,1.0,1.0\n1,1,1.0,1.0\n")
    margins = seed_margins(metrics, clips, 3)
    spread = statistics.stdev(losses)
    assert margins["final_train_losses.2"] == pytest.approx(3 * 2**0.5 * spread)
    assert margins["final_train_loss"] == pytest.approx(3 * (2 / 3) ** 0.5 * spread)
    assert margins["seed_headlines.0"] == pytest.approx(3 * 2**0.5 * statistics.stdev(headlines))
    assert margins["strided_hit"] == margins["hit"] == pytest.approx(3 * seed_noise(clips)["hit"])
    one_seed = seed_margins({"seed_headlines": [0.1]}, tmp_path / "none.csv", 3)
    assert one_seed == {}  # one seed, no clips.csv: no margin


def test_only_a_readout_family_has_a_seed_margin(tmp_path):
    (tmp_path / "bad.yaml").write_text("pretrain: {relative: 0.0, seed_margin: 3}\n")
    with pytest.raises(ConfigError, match="only a readout family has a seed_margin"):
        load_contract(tmp_path / "bad.yaml")
