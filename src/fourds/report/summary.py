"""The report's verdicts in words: the front page's sentence and the sections' summary lines.

All are written from one FrontPage (fourds.report.front), so they say what its grid shows:
pretraining against the control and the largest scale against the smallest are judged at the
largest scale, where the study's answer is; "outside the noise" means the gain's 90% paired
clip-bootstrap interval excludes zero.
"""

from __future__ import annotations

from fourds.config.regimes import REGIMES
from fourds.report.compare import BETTER, WORSE, TaskScores
from fourds.report.front import FrontPage
from fourds.report.numbers import significant


def listing(items: list[str], conjunction: str = "and") -> str:
    """'a', 'a and b', 'a, b and c' ('or' for `conjunction`="or")."""
    if len(items) < 2:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def sentence(page: FrontPage) -> str:
    """What the study shows and does not, from the numbers: at the largest scale, pretraining
    against the control and the largest scale against the smallest (on how many tasks each is
    better, and where worse), that one pretraining seed a scale cannot tell whether the MAE
    loss falls with scale, how many readouts are flagged, which per-clip values were not finite
    (left out), and then task by task which gain the study shows (pretraining's, scale's,
    both) and where it shows none. A gain is shown on a task only where the largest scale's
    readout wins its comparison outside the noise and is above its no-learning baseline (not
    flagged). A study of one scale says that it compares no scales and fits no scaling law
    (`no_scaling`)."""
    largest, smallest = page.scales[-1], page.scales[0]
    above = [task for task in page.tasks if not page.grid[task][largest].flag]
    clauses, gains = [], {}
    if page.control:
        groups = page.by_direction("over_control", largest)
        clauses.append(
            f"at the largest scale ({largest}) pretraining beats {REGIMES[page.control].name} on "
            f"{_tally(page, groups)}"
        )
        gains["pretraining"] = [task for task in groups[BETTER] if task in above]
    if len(page.scales) > 1:
        groups = page.by_direction("over_smallest", largest)
        clauses.append(f"{largest} beats {smallest} on {_tally(page, groups)}")
        clauses.append(
            f"whether the {page.loss_name} MAE loss falls with scale cannot be told from one "
            f"pretraining seed a scale ({significant(page.losses[smallest])} at {smallest}, "
            f"{significant(page.losses[largest])} at {largest})"
        )
        gains["scale"] = [task for task in groups[BETTER] if task in above]
    else:
        clauses.append(no_scaling(largest))
    readouts, flagged = len(page.tasks) * len(page.scales), len(page.flagged())
    clauses.append(
        f"{flagged} of {readouts} pretrained readouts are not above their no-learning baseline "
        "(flagged ⚠)"
        if flagged
        else f"all {readouts} pretrained readouts are above their no-learning baseline"
    )
    if page.failed:
        stages = ", ".join(f"{stage} ({count})" for stage, count in page.failed.items())
        clauses.append(
            f"{sum(page.failed.values())} per-clip values were not finite and are left out of "
            f"their headlines and intervals: {stages}"
        )
    if gains:
        clauses.append(_shown(page.tasks, gains))
    text = "; ".join(clauses)
    return text[0].upper() + text[1:] + "."


def no_scaling(scale: str) -> str:
    """What a study of the one scale `scale` cannot show, as a clause."""
    return (
        f"with one scale ({scale}) there is no scale comparison and no scaling fit: both need two "
        "or more scales in ladder.scales"
    )


def _tally(page: FrontPage, groups: dict[str, list[str]]) -> str:
    """'N of T tasks (a, b)' better, and ' and loses on M (c)' when some are worse."""
    better, worse = groups[BETTER], groups[WORSE]
    text = f"{len(better)} of {len(page.tasks)} tasks"
    if better:
        text += f" ({', '.join(better)})"
    if worse:
        text += f" and loses on {len(worse)} ({', '.join(worse)})"
    return text


def _shown(tasks: list[str], gains: dict[str, list[str]]) -> str:
    """'so the study shows a gain from pretraining on a, from scale on b and from both
    pretraining and scale on c, and does not show one on d': each task under the gains shown on
    it (`gains`: where each gain is shown, e.g. "pretraining" -> its tasks)."""
    found: dict[str, list[str]] = {}
    for task in tasks:
        sources = [source for source, shown in gains.items() if task in shown]
        name = "both" if len(sources) > 1 else (sources[0] if sources else "")
        found.setdefault(name, []).append(task)
    none = found.pop("", [])
    if not found:
        return f"so the study does not show a gain from {listing(list(gains), 'or')} on any task"
    labels = {**{name: name for name in gains}, "both": f"both {' and '.join(gains)}"}
    parts = [f"from {labels[name]} on {listing(found[name])}" for name in labels if name in found]
    text = f"so the study shows a gain {listing(parts)}"
    return text + (f", and does not show one on {listing(none)}" if none else "")


def control_line(page: FrontPage) -> str:
    """The control section's summary: where pretraining beats the control at the largest
    scale, and where at every scale."""
    largest, total = page.scales[-1], len(page.tasks)
    at_largest = page.by_direction("over_control", largest)[BETTER]
    everywhere = [
        task
        for task in page.tasks
        if all(task in page.by_direction("over_control", scale)[BETTER] for scale in page.scales)
    ]
    return (
        f"**Pretraining beats {REGIMES[page.control].name} outside the noise at the largest scale "
        f"({largest}) on: {listing(at_largest) or 'no task'}** ({len(at_largest)} of {total} "
        f"tasks; at every scale on: {listing(everywhere) or 'no task'})."
    )


def scale_line(page: FrontPage) -> str:
    """The scale section's summary: where the largest scale beats the smallest, and where it
    is worse; with one scale, that there is no comparison (`no_scaling`)."""
    if len(page.scales) < 2:
        text = no_scaling(page.scales[0])
        return f"**{text[0].upper()}{text[1:]}.**"
    groups = page.by_direction("over_smallest", page.scales[-1])
    better, worse = groups[BETTER], groups[WORSE]
    return (
        f"**The largest scale beats the smallest outside the noise on: "
        f"{listing(better) or 'no task'}** ({len(better)} of {len(page.tasks)} tasks; worse on: "
        f"{listing(worse) or 'no task'})."
    )


def flag_note(page: FrontPage) -> str:
    """The flagged readouts, task by task ("pose: cpu_m, cpu_l level with its baseline"), or
    that none is."""
    groups: dict[tuple[str, str], list[str]] = {}
    for task, scale, flag in page.flagged():
        groups.setdefault((task, flag), []).append(scale)
    if not groups:
        return "No readout is flagged: every one beats its no-learning baseline outside the noise."
    parts = [f"{task}: {', '.join(scales)} {flag}" for (task, flag), scales in groups.items()]
    return f"Flagged ⚠ here: {'; '.join(parts)}."


def interval_note(scores: dict[str, TaskScores]) -> str:
    """What the intervals count: the test clips, and the readout seeds of the tasks whose
    readouts trained several (readouts.<task>.seeds), or that every readout trained one."""
    by_count: dict[int, list[str]] = {}
    for task, task_scores in scores.items():
        seeds = min(clip_scores.seeds for clip_scores in task_scores.scores.values())
        by_count.setdefault(seeds, []).append(task)
    several = {count: tasks for count, tasks in sorted(by_count.items()) if count > 1}
    counted = "; ".join(f"{listing(tasks)}: {count} seeds" for count, tasks in several.items())
    if not several:
        trained = "every readout trained one seed, so its own training noise is not counted"
    elif 1 in by_count:
        trained = f"they count the readouts' training noise over their seeds ({counted}); "
        trained += f"{listing(by_count[1])} trained one seed, counted by its clips only"
    else:
        trained = f"they count every readout's training noise over its seeds ({counted})"
    return (
        f"The intervals resample the test clips, and {trained}. Not counted: another "
        "pretraining seed (each scale is one pretraining run)."
    )
