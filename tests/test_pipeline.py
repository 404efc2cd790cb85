"""End to end: a fresh git + DVC repository runs the smoke ladder through `dvc exp run`."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from fourds import layout
from fourds.report.lineage import READ, anchor
from fourds.report.numbers import significant
from fourds.report.offline import external_loads
from tests.conftest import copy_tracked_files, doc_commands, sh

# The first commands of the README's auditing walkthrough: the corpus and the smoke experiment.
SETUP = 2


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory) -> Path:
    """A copy of the repository's tracked files as a new git repo, after getting-started's first
    run up to its answer (two tasks) and then the smoke experiment (the auditing walkthrough's
    first commands), as written: DVC's run cache gives the smoke experiment the first run's
    stages, so it trains the other three tasks' readouts only. The default's pinned `dvc.lock`
    is left out: no command here reads its entries, and DVC parses and rewrites the whole lock
    after every stage it runs or restores, so its 36 entries would double the cost of each of
    the smoke ladder's 26 (the sweep below restores them all twice)."""
    repo = tmp_path_factory.mktemp("fourds")
    copy_tracked_files(repo, skip=("dvc.lock",))
    sh("git", "init", "-q", cwd=repo)
    sh("git", "config", "user.name", "fourds tests", cwd=repo)
    sh("git", "config", "user.email", "tests@fourds.invalid", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "init", cwd=repo)
    first = doc_commands("A first run, in minutes")
    for command in first[: first.index("fourds answer") + 1]:
        output = sh("bash", "-c", command, cwd=repo)
    assert "smoke_l beats smoke_s on" in output and "of 2 tasks" in output, output
    for command in doc_commands("Auditing a result")[:SETUP]:
        sh("bash", "-c", command, cwd=repo)
    return repo


@pytest.mark.slow
def test_dag_wires_every_stage(smoke_repo):
    edges = sh("dvc", "dag", "--dot", cwd=smoke_repo)
    for source, target in [
        ("data.dvc", "curate"),
        ("curate", "pretrain@smoke_s"),
        ("pretrain@smoke_s", "fidelity@smoke_s"),
        ("pretrain@smoke_l", "fidelity@smoke_s"),  # the fixed feature extractor
        ("pretrain@smoke_l", "readout@smoke_l-frozen"),
        ("pretrain@smoke_s", "readout@smoke_s-initial"),
        ("readout@smoke_s-frozen", "report"),
        ("readout@smoke_l-initial", "report"),
    ]:
        assert f'"{source}" -> "{target}"' in edges, edges


@pytest.mark.slow
def test_the_commands_that_look_at_results_run_as_written(smoke_repo):
    """README, "What comes out, and where": the answer, the lineage graph, the pretraining
    metrics, the experiments and the plots, each narrow enough for a terminal."""
    answer, dag, metrics, experiments, _template, plots = [
        sh("bash", "-c", command, cwd=smoke_repo)
        for command in doc_commands("What comes out, and where")
    ]
    assert answer.startswith("At the largest scale (smoke_l) pretraining beats the control at")
    for stage in ("data.dvc", "curate", "fidelity@smoke_s", "readout@smoke_l-frozen"):
        assert stage in dag, dag
    assert dag.startswith("```mermaid") and '["pretrain@smoke_s"]' in dag
    for scale in ("smoke_s", "smoke_l"):
        assert f"runs/pretrain/{scale}/metrics.json" in metrics, metrics
    assert re.search(r"^smoke +ladder\.name=smoke", experiments, re.MULTILINE), experiments
    for output in (answer, dag, metrics, experiments):  # each reads in a terminal
        assert max(len(line) for line in output.splitlines()) <= 160, output
    page = smoke_repo / "dvc_plots/index.html"
    assert "dvc_plots/index.html" in plots and page.is_file()
    # the page opens offline: .dvc/config's template bundles vega instead of DVC's CDN scripts
    assert external_loads(page.read_text()) == []
    assert "dvc_plots" not in sh("git", "status", "--porcelain", cwd=smoke_repo)  # ignored
    page.unlink()  # the walkthrough's `dvc plots diff` writes its own


@pytest.mark.slow
def test_report_has_fits_tables_and_lineage_for_every_scale(smoke_repo):
    html = (smoke_repo / "reports" / "out" / "scaling.html").read_text()
    assert html.count("data:image/png;base64") >= 11  # 2 scaling plots per task, loss curves
    # a fit per task and regime (pretrained and the control) on params, and of the
    # pretrained readouts only on FLOPs (the control spent none)
    assert html.count("exponent 90% interval") == 15
    assert "Pretraining beats the control at pretraining's start outside the noise" in html
    assert "The largest scale beats the smallest outside the noise" in html
    assert "the paper's numbers" in html.lower() and "Lineage of every number" in html
    assert external_loads(html) == []
    lock = yaml.safe_load((smoke_repo / "dvc.lock").read_text())["stages"]
    for stage in ("curate", "pretrain@smoke_s", "readout@smoke_l-frozen"):
        assert f'<td><span id="{anchor(stage)}"></span><code>{stage}</code></td>' in html
        for out in lock[stage]["outs"]:  # the digests shown are dvc.lock's
            if out["path"].rsplit("/", 1)[1] in READ[stage.split("@")[0]]:
                assert f"<code>{out['md5']}</code>" in html, (stage, out["path"])
    for task in ("depth", "pose", "tracking", "boxes", "classification"):
        table = (
            (smoke_repo / "reports" / "out" / "tables" / f"scaling_{task}.csv")
            .read_text()
            .splitlines()
        )
        assert [line.split(",")[0] for line in table[1:]] == ["smoke_s", "smoke_l"]


@pytest.mark.slow
def test_exp_show_lists_per_scale_metrics(smoke_repo):
    rows = json.loads(sh("dvc", "exp", "show", "--json", cwd=smoke_repo))
    experiments = [exp for row in rows for exp in (row.get("experiments") or [])]
    assert experiments, rows
    metrics = experiments[0]["revs"][0]["data"]["metrics"]
    headlines = {
        "depth": "abs_rel",
        "pose": "end_point_error",
        "tracking": "average_jaccard",
        "boxes": "miou",
        "classification": "top1",
    }
    for scale in ("smoke_s", "smoke_l"):
        for task, headline in headlines.items():
            files = layout.ReadoutFiles.of(scale, task, "frozen")
            readout = metrics[(layout.RUNS / files.metrics).as_posix()]["data"]
            assert readout["headline"] == headline and np.isfinite(readout[headline]), readout
            stage_dir = smoke_repo / layout.RUNS / layout.readout(scale, "frozen").folder
            assert (stage_dir / "examples" / f"{task}.png").is_file()
            assert (stage_dir / "operative.gin").is_file()
            for regime in ("frozen", "initial"):  # per-clip values for the report's intervals
                files = layout.ReadoutFiles.of(scale, task, regime).at(smoke_repo / layout.RUNS)
                assert files.clips.read_text().startswith(f"clip,weight,{headline}"), files
        assert metrics[f"runs/pretrain/{scale}/metrics.json"]["data"]["params"] > 0


@pytest.mark.slow
def test_synth_reproduces_the_embedded_corpus_in_the_remote(smoke_repo, tmp_path):
    """The first video of every split, rendered again from the pinned WorldSpec, decodes to the
    frames of the corpus pulled from the DVC remote, with the same ground truth."""
    from fourds.data.corpus import SPLITS, WorldSpec, write_corpus
    from fourds.data.video import read_video

    pinned = WorldSpec(**json.loads((smoke_repo / "data" / "world.json").read_text()))
    assert pinned == WorldSpec()  # the corpus is the default spec
    first_of_each = dataclasses.replace(pinned, videos={split: 1 for split in SPLITS})
    write_corpus(tmp_path, first_of_each)
    for split in SPLITS:
        ours, theirs = tmp_path / split / "00000.mp4", smoke_repo / "data" / split / "00000.mp4"
        np.testing.assert_array_equal(read_video(ours), read_video(theirs))
        with (
            np.load(ours.with_suffix(".npz")) as mine,
            np.load(theirs.with_suffix(".npz")) as pulled,
        ):
            assert sorted(mine.files) == sorted(pulled.files)
            for key in mine.files:
                np.testing.assert_array_equal(mine[key], pulled[key], err_msg=f"{split} {key}")


@pytest.mark.slow
def test_the_auditing_walkthrough_runs_as_written(smoke_repo):
    """docs/pipeline.md, "Auditing a result", after its setup (the fixture): the graph of one
    readout's inputs fits a terminal, the diffs name what moved, and `dvc plots diff` draws its
    page with the template the block itself writes, as in a clone where nothing wrote it."""
    (smoke_repo / "reports/dvc_plots.html").unlink(missing_ok=True)  # the first block's
    output = {}
    for command in doc_commands("Auditing a result")[SETUP:]:
        output[command.split()[1]] = sh("bash", "-c", command, cwd=smoke_repo)
    dag = output["dag"]  # the smoke_l depth readout's inputs, a box each
    for stage in ("data.dvc", "curate", "pretrain@smoke_l", "readout@smoke_l-frozen"):
        assert f"| {stage} |" in dag, dag
    assert "smoke_s" not in dag and max(len(line) for line in dag.splitlines()) <= 80, dag
    assert "steps: 60" in output["-A"]  # grep: the depth readout's params in dvc.lock
    assert "readouts.depth.steps" in output["params"] and "60" in output["params"]
    changed = output["metrics"]
    assert "smoke_l-frozen/metrics/depth.json" in changed and "boxes" not in changed, changed
    assert (smoke_repo / "dvc_plots/index.html").is_file()
    # the experiments, a row each: the swept param and the depth readout's headline
    table = output["experiments"]
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert "readouts.depth.steps=60" in rows["smoke-depth-60"], table
    assert "readouts.depth.steps=30" in rows["smoke"], table
    abs_rel = depth_readouts(smoke_repo)["smoke-depth-60"][1]
    assert significant(abs_rel) in rows["smoke-depth-60"].split(), table
    assert max(len(line) for line in table.splitlines()) <= 160, table


def depth_readouts(repo: Path) -> dict[str, tuple[int, float]]:
    """Every experiment `dvc exp show` lists: name -> (readouts.depth.steps, the smoke_l
    frozen depth readout's AbsRel)."""
    rows = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo))
    found = {}
    for experiment in (exp for row in rows for exp in (row.get("experiments") or [])):
        data = experiment["revs"][0]["data"]
        steps = data["params"]["params.yaml"]["data"]["readouts"]["depth"]["steps"]
        metrics = data["metrics"]["runs/readout/smoke_l-frozen/metrics/depth.json"]["data"]
        found[experiment["name"]] = steps, metrics["abs_rel"]
    return found


@pytest.mark.slow
def test_a_queued_sweep_runs_in_the_background_and_exp_show_compares_it(smoke_repo):
    """The README's depth-readout sweep, as written (its status command until nothing is
    queued or running). After the auditing walkthrough (above in this file) both of its values
    were run (30 steps, the smoke ladder's, and 60), so DVC's run cache restores every stage of
    both experiments; run alone, the test trains the 60-step readouts."""
    before = sh("dvc", "exp", "list", "--name-only", cwd=smoke_repo).split()
    queue, start, check, show = doc_commands("Sweeps")
    sh("bash", "-c", queue, cwd=smoke_repo)
    sh("bash", "-c", start, cwd=smoke_repo)
    deadline = time.monotonic() + 1200
    status = sh("bash", "-c", check, cwd=smoke_repo)
    while {"Queued", "Running"} & set(status.split()):
        assert time.monotonic() < deadline, status
        if "Running" not in status.split() and "0 active, 0 idle" in status:
            # DVC's worker can exit with experiments still queued (treeverse/dvc#10562);
            # starting the queue again goes on with them, as the README says.
            sh("bash", "-c", start, cwd=smoke_repo)
        time.sleep(10)  # each `dvc queue status` costs the worker a second or two of CPU
        status = sh("bash", "-c", check, cwd=smoke_repo)
    assert "Failed" not in status, status
    shown = sh("bash", "-c", show, cwd=smoke_repo)
    after = depth_readouts(smoke_repo)
    swept = {steps: abs_rel for name, (steps, abs_rel) in after.items() if name not in before}
    assert sorted(swept) == [30, 60] and swept[30] != swept[60], swept
    assert swept[30] == after["smoke"][1]  # the same run as the smoke experiment's
    assert all(re.search(rf"^{re.escape(name)} ", shown, re.MULTILINE) for name in after), shown


@pytest.mark.slow
def test_fidelity_metrics_and_reconstructions_for_every_scale(smoke_repo):
    for scale in ("smoke_s", "smoke_l"):  # and `dvc metrics show` lists them (above)
        out = smoke_repo / "runs" / "fidelity" / scale
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["scale"] == scale and metrics["feature_extractor"] == "fourds"
        assert metrics["extractor_weights"] == "runs/pretrain/smoke_l/checkpoint.pt"
        for key in ("fid", "kid_mean", "kid_std", "psnr", "psnr_masked", "baseline_psnr_masked"):
            assert np.isfinite(metrics[key]), (scale, key, metrics)
        assert (out / "examples" / "reconstructions.png").is_file()


@pytest.mark.slow
def test_the_first_run_s_last_lines_leave_the_pinned_state(smoke_repo):
    """docs/getting-started.md, "A first run, in minutes": after experiments run in the workspace
    (the fixture's and the walkthrough's), `git checkout -- .` leaves their stage folders for
    git to see, and the page's last line removes them and their report: git sees nothing (but
    DVC's dvc.lock, which the fixture's commit leaves out). Last in this file: it clears the
    outputs the tests above read."""
    restore, clean = doc_commands("A first run, in minutes")[-2:]
    assert restore == "git checkout -- ."
    sh("bash", "-c", restore, cwd=smoke_repo)
    left = sh("git", "status", "--porcelain", cwd=smoke_repo)
    assert "?? runs/pretrain/smoke_s/" in left and "?? runs/readout/smoke_l-frozen/" in left
    assert (smoke_repo / "reports/out/scaling.html").is_file()  # the smoke report, git ignores it
    sh("bash", "-c", clean, cwd=smoke_repo)
    assert sh("git", "status", "--porcelain", cwd=smoke_repo) == "?? dvc.lock\n"
    assert not list(smoke_repo.glob("runs/*/smoke_*"))
    assert not (smoke_repo / "reports/out/scaling.html").exists()
    ignored = sh("git", "status", "--porcelain", "--ignored", "runs", "reports/out", cwd=smoke_repo)
    assert ignored == "", ignored  # as a clone has them
