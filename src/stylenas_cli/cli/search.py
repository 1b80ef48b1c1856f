"""``stylenas search`` (StyleNAS) and ``stylenas prune`` (PhotoNAS P-step): options -> a
config dataclass -> :func:`stylenas_cli.nas.search` / :func:`~stylenas_cli.nas.prune` ->
the summary; progress bars are drawn from the library's callbacks."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ._common import Finite, command, console, device_option, options, quiet_option, ray_options

SHARED = Path("..") / "shared" / "data"
DEFAULT_TRAIN = SHARED / "train"
WEIGHT = Finite(min=0)  # an objective's weight
DEFAULT_PAIRS = SHARED / "bench" / "stylenas"
INTERRUPTED = "interrupted; finished candidates are saved: rerun with --resume"

_shared = options(
    click.option(
        "--train-data",
        type=click.Path(path_type=Path),
        default=DEFAULT_TRAIN,
        help="Folder of training photos (searched recursively; every 20th is held aside).",
    ),
    click.option(
        "--val-pairs",
        type=click.Path(path_type=Path),
        default=DEFAULT_PAIRS,
        help="Folder with content/ and style/ subfolders of same-named validation photos.",
    ),
    click.option(
        "--val-count",
        type=click.IntRange(min=1),
        default=4,
        help="Validation pairs used (evenly spread over the folder).",
    ),
    click.option(
        "--val-size",
        type=click.IntRange(min=32),
        default=128,
        help="Side of the square centre crops the candidates are measured on (px).",
    ),
    click.option(
        "--strategy",
        type=click.Choice(["evolution", "random"]),
        default="evolution",
        help="Aging evolution or random search at the same budget.",
    ),
    click.option(
        "--population",
        type=click.IntRange(min=1),
        default=8,
        help="Aging-evolution population (the paper: 50).",
    ),
    click.option(
        "--sample",
        type=click.IntRange(min=1),
        default=3,
        help="Contenders drawn from the population to pick a parent (the paper: 10).",
    ),
    click.option(
        "--budget",
        type=click.IntRange(min=1),
        default=24,
        help="Distinct genotypes to train and evaluate in all (the paper: 200).",
    ),
    click.option(
        "--include",
        default="photonas",
        help="Comma-separated genotypes (names or 32-bit strings) evaluated first and "
        "marked in the plot; '' for none.",
    ),
    click.option(
        "--max-gflops",
        default=None,
        metavar="GFLOPS|ARCH",
        help="Search only genotypes whose decoder costs at most this many GFLOPs at "
        "512×512, or at most an architecture's (a name or 32-bit string: 'photonas' "
        "searches for networks no costlier than it). Default: no cap.",
    ),
    click.option(
        "--train-steps",
        type=click.IntRange(min=0),
        default=100,
        help="Reconstruction training steps per candidate.",
    ),
    click.option(
        "--image-size",
        type=click.IntRange(min=32),
        default=64,
        help="Training crop side (px).",
    ),
    click.option("--batch", type=click.IntRange(min=1), default=4, help="Photos per step."),
    click.option(
        "--lr",
        type=Finite(min=0, min_open=True),
        default=5e-4,
        help="Peak learning rate (warm-up, cosine).",
    ),  # fmt: skip
    click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=1,
        help="Candidates evaluated in parallel (local processes, or Ray tasks in flight).",
    ),
    click.option(
        "--backend",
        type=click.Choice(["local", "ray"]),
        default="local",
        help="local processes, or Ray tasks (pip install 'stylenas-cli[ray]').",
    ),
    ray_options,
    click.option(
        "--gpus-per-task",
        type=Finite(min=0),
        default=0.0,
        help="GPUs each Ray task asks for (fractions share a GPU).",
    ),
    device_option,
    click.option(
        "--keep-checkpoints",
        is_flag=True,
        help="Keep every candidate's decoder in <out>/candidates/ (default: the winner and "
        "the Pareto front only).",
    ),
    click.option("--seed", type=int, default=0, help="Random seed of the search and training."),
    click.option(
        "--resume",
        is_flag=True,
        help="Continue the run in --out: finished candidates are read back, not repeated.",
    ),
    quiet_option,
    click.option(
        "--json", "as_json", is_flag=True, help="Print the summary as one JSON object on stdout."
    ),
)


def _final_steps(default: int):
    return click.option(
        "--final-steps",
        type=click.IntRange(min=0),
        default=default,
        help="Then train the winner this many more steps into <out>/winner.pt (0: the "
        "winner's candidate checkpoint is the result).",
    )


def _progress(quiet: bool):
    """One progress display for the search and then the winner's training (stderr)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    )
    return Progress(*columns, console=console(), disable=quiet)


FRONT_COLUMNS = ("quality", "dssim", "gram", "lab_w1", "recon", "l_r", "gflops", "net_seconds")


def front_lines(front: list[dict]) -> list[str]:
    """The Pareto front (cost against quality), cheapest first: one line per genotype."""
    columns = [c for c in FRONT_COLUMNS if any(c in row for row in front)]
    lines = ["Pareto front (cheapest first):"]
    for row in sorted(front, key=lambda r: r.get("gflops", 0.0)):
        values = "  ".join(f"{c} {row[c]:.4g}" for c in columns if c in row)
        lines.append(f"  {row['genotype']}  {values}")
    return lines


def rerank_lines(summary: dict) -> list[str]:
    """The re-ranked genotypes, fittest after training first, beside their supernet fitness."""
    was = summary["supernet_winner"]
    lines = [f"re-ranked by training (supernet's winner {was['genotype']} {was['fitness']:.4f}):"]
    ref = summary.get("rerank_reference")
    for row in summary["rerank"]:
        o = row["objectives"]
        columns = ("dssim", "gram", "lab_w1", "gflops")
        values = "  ".join(f"{c} {o[c]:.4g}" for c in columns if c in o)
        mark = ""
        if row["genotype"] == ref:
            mark = "  (reference)"
        elif row.get("dominates_reference"):
            mark = "  dominates the reference (dssim, gram, gflops)"
        lines.append(f"  {row['genotype']}  fitness {row['fitness']:.4f}  {values}{mark}")
    return lines


def _execute(kind: str, job, config, quiet: bool, as_json: bool) -> None:
    """Run ``job(config, ...)`` (:func:`~stylenas_cli.nas.search` or ``prune``) with
    progress bars, then print the summary: one JSON object, or the path of best.json."""
    from rich.markup import escape

    bar = _progress(quiet)
    tasks = {}

    def on_start(phase: str, total: int, done: int, info: str) -> None:
        bar.start()  # once the inputs are checked: an error stays one line
        label = kind if phase == "search" else phase
        tasks[phase] = bar.add_task(label, total=total, completed=done, info=info)

    def on_result(result, summary: dict) -> None:
        fitness = summary.get("fitness")
        info = f"best {fitness:.4f}" if fitness is not None else ""
        bar.update(tasks["search"], advance=1, info=info)
        if result.scores.failed and not quiet:
            bar.console.print(escape(f"{result.genotype} failed: {result.scores.error}"))

    def on_step(step: int, info: dict) -> None:
        bar.update(tasks["final"], completed=step, info=f"loss {info['loss']:.4f}")

    def on_rerank(line: dict) -> None:
        bar.update(tasks["rerank"], advance=1, info=f"last {line['fitness']:.4f}")

    def log(message: str) -> None:
        if not quiet:
            bar.console.print(escape(message))

    hooks = dict(on_start=on_start, on_result=on_result, on_step=on_step, log=log)
    if kind == "search":
        hooks["on_rerank"] = on_rerank
    try:
        summary = job(config, **hooks)
    finally:
        if tasks:  # started (stopping prints a line even when it was not)
            bar.stop()
    if as_json:
        click.echo(json.dumps(summary))
        return
    if not quiet:
        front = summary.get("pareto_front", [])
        console().print(
            f"best {summary['genotype']}  fitness {summary['fitness']:.4f}  "
            f"({summary['evaluated']} evaluated, {summary['failed']} failed, "
            f"{len(front)} on the Pareto front)"
        )
        for line in front_lines(front) if front else []:
            console().print(line, soft_wrap=True, highlight=False)
        for line in rerank_lines(summary) if "rerank" in summary else []:
            console().print(line, soft_wrap=True, highlight=False)
    click.echo(str(Path(summary["run"]) / "best.json"))


@command("search", interrupted=INTERRUPTED)
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/search"),
    help="Run directory (config.json, records.jsonl, best.json, pareto.png).",
)
@_shared
@_final_steps(0)
@click.option(
    "--val-photos",
    type=click.IntRange(min=1),
    default=8,
    help="Held-aside training photos the reconstruction loss is measured on.",
)
@click.option(
    "--proxy",
    type=click.Choice(["supernet", "train"]),
    default="supernet",
    help="supernet: each candidate's decoder inherited from the supernet and scored on pairs "
    "of held-aside training photos (no training, seconds each; --val-pairs and the training "
    "options are unused); train: each candidate trained --train-steps, then scored on "
    "--val-pairs.",
)
@click.option(
    "--rerank",
    type=click.IntRange(min=0),
    default=0,
    help="--proxy supernet: then train the K fittest candidates and the --include ones "
    "from scratch (--train-steps steps of --batch crops of --image-size) and pick the "
    "winner among them by their scores after training, which rank genotypes more "
    "faithfully (docs/search.md). 0: off.",
)
@click.option(
    "--rerank-seeds",
    type=click.IntRange(min=1),
    default=1,
    help="Train each re-ranked decoder this many times (seeds) and average its scores: "
    "short trainings differ by seed about as much as close genotypes differ.",
)
@click.option(
    "--supernet",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Supernet weights for --proxy supernet (`stylenas supernet` writes them). "
    "Default: the shipped weights/supernet.pt.",
)
@click.option(
    "--w-recon", type=WEIGHT, default=1.0,
    help="Weight of the reconstruction loss (--proxy train).",
)  # fmt: skip
@click.option("--w-gram", type=WEIGHT, default=1.0, help="Weight of the stylisation Gram loss.")
@click.option("--w-ssim", type=WEIGHT, default=1.0, help="Weight of 1 − SSIM to the content.")
@click.option(
    "--w-lab", type=WEIGHT, default=0.1,
    help="Weight of the Lab Wasserstein distance to the style (--proxy supernet).",
)  # fmt: skip
@click.option("--w-gflops", type=WEIGHT, default=0.001, help="Weight of GFLOPs at 512×512.")
@click.option("--w-params", type=WEIGHT, default=0.0, help="Weight of millions of parameters.")
@click.option(
    "--w-time", type=WEIGHT, default=0.0,
    help="Weight of measured time: decoder seconds at 384×288 (supernet), seconds per "
    "megapixel (train).",
)  # fmt: skip
def search_command(
    w_recon, w_gram, w_ssim, w_lab, w_gflops, w_params, w_time, quiet, as_json, **opts
) -> None:
    """StyleNAS: evolve decoder architectures (SPEC §5) and write a run directory.

    Each candidate is scored on stylisation with the shipped pipeline (SSIM to the content,
    Gram and Lab distance to the style) and cost; the fittest by the weighted sum wins and
    the Pareto front of cost vs quality is plotted and printed. With the default supernet
    proxy a candidate costs seconds; with --proxy train it is trained first.

    \b
    stylenas search -o runs/search --budget 200 --population 50 --sample 10
    stylenas stylize photo.jpg style.jpg --arch runs/search/best.json
    """
    from ..nas import SearchConfig, search

    common = {"gram": w_gram, "dssim": w_ssim, "gflops": w_gflops, "params_m": w_params}
    if opts["proxy"] == "supernet":
        weights = common | {"lab_w1": w_lab, "net_seconds": w_time}
    else:
        weights = common | {"recon": w_recon, "sec_per_mp": w_time}
    _execute("search", search, SearchConfig(**opts, weights=weights), quiet, as_json)


@command("prune", interrupted=INTERRUPTED)
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/prune"),
    help="Run directory (config.json, records.jsonl, best.json, winner.pt, pareto.png).",
)
@click.option(
    "--teacher",
    default="photonet",
    help="Teacher architecture: a name, a 32-bit genotype or a run's best.json.",
)
@click.option(
    "--teacher-weights",
    type=click.Path(path_type=Path),
    default=None,
    help="Teacher decoder weights. Default: the shipped weights of --teacher.",
)
@_shared
@_final_steps(400)
@click.option(
    "--warm-start/--no-warm-start",
    default=True,
    help="Start each student from the teacher's weights where layers match.",
)
@click.option("--w-r", type=WEIGHT, default=0.8, help="Weight of L_r (pixel MSE to the teacher).")
@click.option("--w-p", type=WEIGHT, default=0.1, help="Weight of L_p (VGG feature MSE).")
@click.option("--w-m", type=WEIGHT, default=0.1, help="Weight of L_m (fraction of bits on).")
def prune_command(w_r, w_p, w_m, quiet, as_json, **opts) -> None:
    """PhotoNAS P-step: prune a teacher into a small, fast student (SPEC §5).

    The teacher stylises the validation pairs once; students (sub-networks of the teacher)
    are trained briefly and scored by w_r·L_r + w_p·L_p + w_m·L_m against its outputs. Give
    --final-steps to train the winner longer into a ready checkpoint.

    \b
    stylenas prune --teacher photonet -o runs/prune --final-steps 400
    stylenas stylize photo.jpg style.jpg --arch runs/prune/best.json
    """
    from ..nas import PruneConfig, prune

    weights = {"l_r": w_r, "l_p": w_p, "l_m": w_m}
    _execute("prune", prune, PruneConfig(**opts, weights=weights), quiet, as_json)
