"""`build_report`: run directories and gap results in, one self-contained HTML page out, with
its tables as CSV and Markdown and its figures as PNG and SVG beside it."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from harness.errors import HarnessError
from harness.gap import table_rows
from harness.likelihood import likelihood_rows
from harness.report import formatting, plots
from harness.report.compute import find_compute_records, validation_curve
from harness.report.html import data_uri, render_page, table_view
from harness.report.inputs import ReportInputs, Run, load_inputs
from harness.report.published import published_compute
from harness.report.qualitative import discordant_pairs
from harness.report.tables import accuracy_rows, group_cells, latency_rows, paired_rows
from harness.stats import BOOTSTRAP_RESAMPLES
from tasks import get_task

PAGE = "index.html"


def default_out(paths: list[str | Path]) -> Path:
    """reports/<run name> for one input, reports/<timestamp>-combined for several."""
    if len(paths) == 1:
        return Path("reports") / Path(paths[0]).resolve().name
    return Path("reports") / (datetime.now().strftime("%Y%m%d-%H%M%S") + "-combined")


def _run_setup(run: Run) -> dict:
    manifest, env = run.manifest, run.manifest.get("environment", {})
    config = manifest.get("config", {})
    setup = [("command", manifest.get("command")), ("created", manifest.get("created")),
             ("status", run.in_progress and f"in progress ({run.in_progress}): the samples finished so far"),
             ("samples", len(run.records)),
             *[(k, ", ".join(map(str, v)) if isinstance(v, list) else v) for k, v in config.items()]]
    machine = [("git commit", env.get("git_commit")), ("device", env.get("device_type")),
               ("torch threads", env.get("torch_threads")), ("python", env.get("python")),
               ("platform", env.get("platform")), *[(k, v) for k, v in env.get("packages", {}).items()]]
    return {"name": str(run.dir), "setup": [(k, v) for k, v in setup if v not in (None, "")],
            "environment": [(k, v) for k, v in machine if v not in (None, "")]}


def _question_lookup(runs: list[Run]):
    """(task, example_id) -> problem text, from the data each run read; None where it cannot be loaded."""
    sources = {}
    for run in runs:
        config = run.manifest.get("config", {})
        for task in config.get("tasks", []):
            sources.setdefault(task, (config.get("split", "test"), run.manifest.get("data_dir")))

    @lru_cache(maxsize=None)
    def examples(task: str) -> dict:
        if task not in sources:
            return {}
        try:
            return {ex.id: ex.question for ex in get_task(task).load(sources[task][0], data_dir=sources[task][1])}
        except HarnessError:
            return {}

    return lambda task, example_id: examples(task).get(example_id)


def _figure(fig, stem: Path) -> dict:
    files = plots.save(fig, stem)
    width = round(fig.get_size_inches()[0] * 96)  # CSS pixels at the figure's own size
    return {"src": data_uri(files["svg"]), "width": width,
            "files": [f"figures/{stem.name}.png", f"figures/{stem.name}.svg"]}


def build_report(paths: list[str | Path], out: str | Path | None = None, compute_dirs=()) -> Path:
    """Write the report of `paths` (run directories and gap results) to `out`; returns the page."""
    inputs: ReportInputs = load_inputs(paths)
    out = Path(out) if out is not None else default_out(paths)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)

    cells = group_cells(inputs.records)
    accuracy, paired, latency = accuracy_rows(cells), paired_rows(cells), latency_rows(cells)
    for rows, columns, stem in ((accuracy, formatting.ACCURACY, "accuracy"), (paired, formatting.PAIRED, "paired"),
                                (latency, formatting.LATENCY, "latency")):
        if rows:
            formatting.write_table(rows, columns, out, stem)
    accuracy_figures = []
    for task in dict.fromkeys(r["task"] for r in accuracy):
        figure = _figure(plots.accuracy_figure(task, [r for r in accuracy if r["task"] == task]),
                         figures / f"accuracy-{task}")
        accuracy_figures.append({"task": task, **figure})

    gaps = []
    for number, gap in enumerate(inputs.gaps, 1):
        stem = f"gap-{gap['task']}" + (f"-{number}" if len(inputs.gaps) > 1 else "")
        rows = table_rows(gap)
        formatting.write_table(rows, formatting.GAP, out, stem)
        setup = [(k, gap.get(k)) for k in ("command", "created", "model", "pc", "tau", "width", "solutions",
                                           "skipped", "chain_rule_order", "seed")]
        gaps.append({"name": f"{gap['task']} ({gap['dir']})", "setup": [(k, v) for k, v in setup if v is not None],
                     "table": table_view(rows, formatting.GAP), **_figure(plots.gap_figure(gap), figures / stem),
                     "files": [f"{stem}.csv", f"{stem}.md"]})

    likelihood = []
    for number, run in enumerate(inputs.runs, 1):
        rows = likelihood_rows(run.likelihood)
        if rows:
            stem = "likelihood" + (f"-{number}" if len(inputs.runs) > 1 else "")
            formatting.write_table(rows, formatting.LIKELIHOOD, out, stem)
            pcs = ", ".join(f"{v['task']}: {v['pc']} (tau {v['tau']:g}, W {v['width']})" for v in run.likelihood
                            if "pc" in v)
            likelihood.append({"name": str(run.dir), "pcs": pcs, "table": table_view(rows, formatting.LIKELIHOOD),
                               "files": [f"{stem}.csv", f"{stem}.md"]})

    compute_records = find_compute_records([*compute_dirs, *(run.dir for run in inputs.runs)])
    compute = None
    if compute_records:
        formatting.write_table(compute_records, formatting.COMPUTE, out, "compute")
        curves = {f"{r['task']} ({r['device_type']})": validation_curve(r) for r in compute_records
                  if r["kind"] == "model"}
        curves = {label: points for label, points in curves.items() if points}
        compute = {**_figure(plots.compute_figure(compute_records, published_compute()), figures / "compute"),
                   "table": table_view(compute_records, formatting.COMPUTE, group="kind"),
                   "files": ["compute.csv", "compute.md"],
                   "curves": curves and _figure(plots.validation_figure(curves), figures / "validation")}

    page = out / PAGE
    page.write_text(render_page(
        title="codd-bench report", generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        inputs=[str(p) for p in paths], runs=[_run_setup(run) for run in inputs.runs],
        accuracy=table_view(accuracy, formatting.ACCURACY), paired=table_view(paired, formatting.PAIRED),
        latency=table_view(latency, formatting.LATENCY), has_published=any(r["published"] is not None for r in accuracy),
        accuracy_figures=accuracy_figures, gaps=gaps, likelihood=likelihood, compute=compute,
        pairs=discordant_pairs(cells, questions=_question_lookup(inputs.runs)), resamples=BOOTSTRAP_RESAMPLES))
    return page
