"""``stylenas search`` (StyleNAS) and ``stylenas prune`` (PhotoNAS P-step): thin Click
commands over :mod:`~stylenas_cli.search`, :mod:`~stylenas_cli.nas` and
:mod:`~stylenas_cli.runs`. Registered on the main group with ``main.add_command``."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True}
SHARED = Path("..") / "shared" / "data"
DEFAULT_TRAIN = SHARED / "train"
DEFAULT_PAIRS = SHARED / "bench" / "stylenas"


def _options(*decorators):
    def apply(f):
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


_common = _options(
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
    click.option("--lr", type=float, default=5e-4, help="Peak learning rate (warm-up, cosine)."),
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
    click.option(
        "--address",
        default=None,
        help="Ray cluster address (ray://host:10001 or auto). Default: start a local Ray.",
    ),
    click.option(
        "--gpus-per-task",
        type=float,
        default=0.0,
        help="GPUs each Ray task asks for (fractions share a GPU).",
    ),
    click.option(
        "--device",
        default="auto",
        help="Where each candidate trains: auto (CUDA if available), cpu, cuda or cuda:N.",
    ),
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
    click.option("-q", "--quiet", is_flag=True, help="No progress on stderr."),
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


def _genotypes(text: str):
    from ..genotype import resolve

    return tuple(resolve(t.strip()) for t in text.split(",") if t.strip())


def _check_folder(path: Path, what: str) -> str:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {path}")
    return str(path.resolve())


def _threads(workers: int) -> int:
    """Torch threads per worker: the cores shared out, unless OMP_NUM_THREADS is set."""
    if "OMP_NUM_THREADS" in os.environ:
        return 0
    return max(1, (os.cpu_count() or 1) // workers)


def _progress(console, label: str, quiet: bool):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    )
    return Progress(*columns, console=console, disable=quiet)


def _run(kind: str, opts: dict, extra_config: dict, make_objective) -> None:
    """What both commands share: open the run, search, train the winner, report.

    ``make_objective(run, settings, val_pairs)`` prepares the run's validation data and
    returns (objective, search space, plot title)."""
    from rich.markup import escape

    from ..nas import TrainSettings, find_pairs
    from ..runs import Plan, Run, execute
    from ..search import make_executor
    from ..train import list_images
    from ._common import CleanError as StylenasError
    from ._common import console as _console

    t0 = time.perf_counter()
    executor = None
    console = _console()
    try:
        include = _genotypes(opts["include"])
        train_data = _check_folder(opts["train_data"], "training data")
        val_pairs = _check_folder(opts["val_pairs"], "validation pairs")
        list_images(train_data)  # fail on bad data before creating the run
        find_pairs(val_pairs)
        settings = TrainSettings(
            data=train_data,
            steps=opts["train_steps"],
            batch=opts["batch"],
            size=opts["image_size"],
            lr=opts["lr"],
            device=opts["device"],
            threads=_threads(opts["workers"]),
        )
        keys = ("strategy", "population", "sample", "budget", "seed", "val_count", "val_size")
        keys += ("workers", "backend", "address", "final_steps", "keep_checkpoints")
        config = {
            "command": kind,
            **{k: opts[k] for k in keys},
            "include": [str(g) for g in include],
            "train": {k: v for k, v in vars(settings).items() if k not in ("device", "threads")},
            "val_pairs": val_pairs,
            "device": opts["device"],
            **extra_config,
        }
        run = Run.open(opts["out"], config, opts["resume"])
        objective, space, title = make_objective(run, settings, val_pairs)
        plan = Plan(
            opts["strategy"],
            opts["budget"],
            opts["population"],
            opts["sample"],
            opts["seed"],
            include,
            space,
            ("gflops", "quality"),
            opts["keep_checkpoints"],
            title,
        )
        executor = make_executor(
            objective,
            opts["workers"],
            opts["backend"],
            opts["address"],
            **({"gpus_per_task": opts["gpus_per_task"]} if opts["backend"] == "ray" else {}),
        )
        done = min(len(run.records()), plan.budget)
        with _progress(console, kind, opts["quiet"]) as bar:
            task = bar.add_task(kind, total=plan.budget, completed=done, info="")

            def on_result(result, summary) -> None:
                note = f"failed: {result.scores.error}" if result.scores.failed else ""
                fitness = summary.get("fitness")
                info = f"best {fitness:.4f}" if fitness is not None else ""
                bar.update(task, advance=1, info=info)
                if note and not opts["quiet"]:
                    bar.console.print(escape(f"{result.genotype} {note}"))

            summary = execute(run, plan, executor, on_result)
        executor.close()
        executor = None
        if summary.get("genotype") is None:
            raise ValueError(f"every candidate failed: see {run.records_path}")
        if opts["final_steps"]:
            summary = _finalize(run, objective, summary, opts, console)
    except KeyboardInterrupt:
        click.echo("interrupted; finished candidates are saved: rerun with --resume", err=True)
        sys.exit(130)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as err:
        raise StylenasError(str(err).splitlines()[0] if str(err) else type(err).__name__) from None
    finally:
        if executor is not None:
            executor.close()
    summary = {"run": str(run.path), **summary, "wall_seconds": round(time.perf_counter() - t0, 1)}
    if opts["as_json"]:
        click.echo(json.dumps(summary))
    else:
        if not opts["quiet"]:
            front = len(summary.get("pareto_front", []))
            console.print(
                f"best {summary['genotype']}  fitness {summary['fitness']:.4f}  "
                f"({summary['evaluated']} evaluated, {summary['failed']} failed, "
                f"{front} on the Pareto front)"
            )
        click.echo(str(run.path / "best.json"))


def _finalize(run, objective, summary: dict, opts: dict, console) -> dict:
    """Train the winner ``--final-steps`` more steps; best.json then names winner.pt."""
    from rich.markup import escape

    from ..genotype import Genotype
    from ..nas import train_winner

    steps = opts["final_steps"]
    with _progress(console, "final", opts["quiet"]) as bar:
        task = bar.add_task("final", total=steps, info=summary["genotype"])

        def on_step(step: int, info: dict) -> None:
            bar.update(task, completed=step, info=f"loss {info['loss']:.4f}")

        def log(message: str) -> None:
            if not opts["quiet"]:
                bar.console.print(escape(message))

        genotype = Genotype(summary["genotype"])
        dest, objectives, seconds = train_winner(objective, genotype, steps, log, on_step)
    summary = dict(summary)
    summary["checkpoint"] = dest.name
    summary["final"] = {"steps": steps, "train_seconds": round(seconds, 1), **objectives}
    run.write_best(summary)
    return summary


@click.command("search", context_settings=CONTEXT)
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/search"),
    help="Run directory (config.json, records.jsonl, best.json, pareto.png).",
)
@_common
@_final_steps(0)
@click.option(
    "--val-photos",
    type=click.IntRange(min=1),
    default=8,
    help="Held-aside training photos the reconstruction loss is measured on.",
)
@click.option("--w-recon", type=float, default=1.0, help="Weight of the reconstruction loss.")
@click.option("--w-gram", type=float, default=1.0, help="Weight of the stylisation Gram loss.")
@click.option("--w-ssim", type=float, default=1.0, help="Weight of 1 − SSIM to the content.")
@click.option("--w-gflops", type=float, default=0.001, help="Weight of GFLOPs at 512×512.")
@click.option("--w-params", type=float, default=0.0, help="Weight of millions of parameters.")
@click.option("--w-time", type=float, default=0.0, help="Weight of seconds per megapixel.")
def search_command(val_photos, w_recon, w_gram, w_ssim, w_gflops, w_params, w_time, **opts):
    """StyleNAS: evolve decoder architectures (SPEC §5) and write a run directory.

    Each candidate is trained briefly for reconstruction, then scored on reconstruction,
    stylisation (Gram loss, SSIM) and cost; the fittest by the weighted sum wins and the
    Pareto front of cost vs quality is plotted.

    \b
    stylenas search -o runs/search --budget 24 --workers 2
    stylenas stylize photo.jpg style.jpg --arch runs/search/best.json
    """
    from ..genotype import SEARCHABLE_BITS
    from ..nas import StyleNASObjective, prepare_stylenas

    weights = {
        "recon": w_recon,
        "gram": w_gram,
        "dssim": w_ssim,
        "gflops": w_gflops,
        "params_m": w_params,
        "sec_per_mp": w_time,
    }

    def make(run, settings, val_pairs):
        prepare_stylenas(
            run.path, settings.data, val_pairs, val_photos, opts["val_count"], opts["val_size"]
        )
        objective = StyleNASObjective(str(run.path.resolve()), settings, weights, seed=opts["seed"])
        return objective, SEARCHABLE_BITS, f"StyleNAS {opts['strategy']}"

    config = {"weights": weights, "val_photos": val_photos}
    _run("search", opts, config, make)


@click.command("prune", context_settings=CONTEXT)
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
@_common
@_final_steps(400)
@click.option(
    "--warm-start/--no-warm-start",
    default=True,
    help="Start each student from the teacher's weights where layers match.",
)
@click.option("--w-r", type=float, default=0.8, help="Weight of L_r (pixel MSE to the teacher).")
@click.option("--w-p", type=float, default=0.1, help="Weight of L_p (VGG feature MSE).")
@click.option("--w-m", type=float, default=0.1, help="Weight of L_m (fraction of bits on).")
def prune_command(teacher, teacher_weights, warm_start, w_r, w_p, w_m, **opts):
    """PhotoNAS P-step: prune a teacher into a small, fast student (SPEC §5).

    The teacher stylises the validation pairs once; students (sub-networks of the teacher)
    are trained briefly and scored by w_r·L_r + w_p·L_p + w_m·L_m against its outputs. Give
    --final-steps to train the winner longer into a ready checkpoint.

    \b
    stylenas prune --teacher photonet -o runs/prune --final-steps 400
    stylenas stylize photo.jpg style.jpg --arch runs/prune/best.json
    """
    from ..nas import PStepObjective, prepare_pstep
    from ..weights import WeightsError, resolve_arch_and_weights, sha256_of
    from ._common import CleanError as StylenasError

    weights = {"l_r": w_r, "l_p": w_p, "l_m": w_m}
    try:
        genotype, teacher_file = resolve_arch_and_weights(teacher, teacher_weights)
        bad = [g for g in _genotypes(opts["include"]) if not g.is_subnet_of(genotype)]
        if bad:
            raise ValueError(f"--include {bad[0]} is not a sub-network of the teacher {genotype}")
        teacher_id = f"{teacher_file.resolve()}:{sha256_of(teacher_file)}"
    except (WeightsError, ValueError) as err:
        raise StylenasError(str(err)) from None

    def make(run, settings, val_pairs):
        from ..model import Stylizer

        st = Stylizer.from_pretrained(genotype, teacher_file, opts["device"])
        prepare_pstep(run.path, val_pairs, opts["val_count"], opts["val_size"], st, teacher_id)
        objective = PStepObjective(
            str(run.path.resolve()),
            settings,
            weights,
            seed=opts["seed"],
            init=str(teacher_file.resolve()) if warm_start else None,
        )
        space = tuple(i for i, b in enumerate(genotype.bits) if b == "1")
        return objective, space, f"PhotoNAS P-step from {genotype}"

    config = {
        "weights": weights,
        "teacher": str(genotype),
        "teacher_weights": teacher_id,
        "warm_start": warm_start,
    }
    _run("prune", opts, config, make)
