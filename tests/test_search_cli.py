"""``stylenas search`` and ``stylenas prune`` (cli/search.py) end to end, tiny: options, the
run directory they write, resume, and one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import write_photo
from stylenas_cli.cli import main
from stylenas_cli.genotype import NAMED, Genotype
from stylenas_cli.nas import pstep_score

pytestmark = pytest.mark.usefixtures("one_thread", "fast_encoder")


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory) -> Path:
    """Four training photos (the first is held aside for validation)."""
    d = tmp_path_factory.mktemp("train")
    sizes = [(80, 60), (60, 80), (96, 64), (80, 60)]
    for k, size in enumerate(sizes):
        write_photo(d / f"{k:02d}.jpg", size, ("astronaut", "coffee")[k % 2])
    return d


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory) -> Path:
    """Two content/style pairs of 64x48 photos."""
    d = tmp_path_factory.mktemp("pairs")
    for k, (c, s) in enumerate([("astronaut", "coffee"), ("coffee", "astronaut")]):
        write_photo(d / "content" / f"{k:02d}.jpg", (64, 48), c)
        write_photo(d / "style" / f"{k:02d}.jpg", (64, 48), s)
    return d


def test_search_cli_end_to_end(photo_dir, pairs_dir, tmp_path):
    from stylenas_cli.cli.search import search_command
    from stylenas_cli.model import Stylizer, pil_to_tensor

    out = tmp_path / "run"
    args = [
        *("--train-data", photo_dir, "--val-pairs", pairs_dir, "-o", out),
        *("--budget", 3, "--population", 2, "--sample", 1, "--train-steps", 2),
        *("--image-size", 48, "--val-size", 48, "--batch", 2, "--val-photos", 1),
        *("--device", "cpu", "--json", "--proxy", "train"),
    ]
    result = CliRunner().invoke(search_command, list(map(str, args)))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert len(records) == 3 and len({r["genotype"] for r in records}) == 3
    assert records[0]["genotype"] == str(NAMED["photonas"])  # --include default
    for r in records:
        assert r["error"] is None and r["worker"] and r["train_seconds"] > 0
        assert set(r["objectives"]) >= {"recon", "gram", "dssim", "params_m", "gflops"}
    config = json.loads((out / "config.json").read_text())
    assert config["budget"] == 3 and config["train"]["steps"] == 2
    assert Image.open(out / "pareto.png").format == "PNG"
    best = json.loads((out / "best.json").read_text())
    assert (
        best["genotype"]
        == summary["genotype"]
        == min(records, key=lambda r: r["fitness"])["genotype"]
    )
    assert best["pareto_front"] and (out / best["checkpoint"]).is_file()
    st = Stylizer.from_pretrained(str(out / "best.json"), device="cpu")
    assert str(st.genotype) == best["genotype"]
    img = pil_to_tensor(Image.open(pairs_dir / "content" / "00.jpg"))
    assert st.stylize(img, img).shape == img.shape
    # Any candidate kept on disk works with `stylenas stylize --arch <genotype> --weights`.
    for arch, weights in [(best["genotype"], out / best["checkpoint"]), (out / "best.json", None)]:
        dest = tmp_path / f"out_{len(list(tmp_path.glob('out_*')))}.png"
        argv = ["stylize", pairs_dir / "content" / "00.jpg", pairs_dir / "style" / "00.jpg"]
        argv += ["--arch", arch, "-o", dest, "--device", "cpu"]
        argv += ["--weights", weights] if weights else []
        done = CliRunner().invoke(main, list(map(str, argv)))
        assert done.exit_code == 0, done.output
        assert Image.open(dest).size == (64, 48)

    # Rerunning with --resume finds every candidate done; without it, refuses.
    again = CliRunner().invoke(search_command, list(map(str, args)) + ["--resume"])
    assert again.exit_code == 0, again.output
    assert len((out / "records.jsonl").read_text().splitlines()) == 3
    refused = CliRunner().invoke(search_command, list(map(str, args)))
    assert refused.exit_code == 1 and "error:" in refused.output and "--resume" in refused.output


def test_cli_errors_are_one_line(tmp_path, photo_dir, weights_file):
    from stylenas_cli.cli.search import prune_command, search_command

    result = CliRunner().invoke(search_command, ["--train-data", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert result.output.strip() == f"error: training data folder not found: {tmp_path / 'nope'}"
    result = CliRunner().invoke(
        prune_command, ["--teacher", "photonas", "--teacher-weights", str(tmp_path / "w.pt")]
    )
    assert (
        result.exit_code == 1
        and result.output.strip() == f"error: {tmp_path / 'w.pt'}: weights file not found"
    )
    result = CliRunner().invoke(
        prune_command,
        [
            *("--teacher", "photonas", "--teacher-weights", str(weights_file)),
            *("--include", "photonet", "--train-data", str(photo_dir)),
            *("--val-pairs", str(tmp_path), "-o", str(tmp_path / "run")),
        ],
    )
    assert result.exit_code == 1 and "not a sub-network of the teacher" in result.output


def test_prune_cli_end_to_end(photo_dir, pairs_dir, tmp_path, weights_file):
    from stylenas_cli.cli.search import prune_command
    from stylenas_cli.model import Stylizer

    teacher = NAMED["photonas"]
    out = tmp_path / "prune"
    args = [
        *("--teacher", teacher, "--teacher-weights", weights_file, "--include", ""),
        *("--train-data", photo_dir, "--val-pairs", pairs_dir, "-o", out, "--budget", 2),
        *("--population", 2, "--sample", 1, "--train-steps", 1, "--image-size", 32),
        *("--val-size", 32, "--val-count", 1, "--batch", 1, "--final-steps", 2, "-q"),
        *("--device", "cpu"),
    ]
    result = CliRunner().invoke(prune_command, list(map(str, args)))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out / "best.json")
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert len(records) == 2
    for r in records:
        assert Genotype(r["genotype"]).is_subnet_of(teacher)
        o = r["objectives"]
        assert r["fitness"] == pytest.approx(pstep_score(o["l_r"], o["l_p"], o["l_m"]))
    best = json.loads((out / "best.json").read_text())
    assert best["checkpoint"] == "winner.pt" and best["final"]["steps"] == 2
    assert {"l_r", "l_p", "l_m"} <= set(best["final"])
    st = Stylizer.from_pretrained(str(out / "best.json"), device="cpu")
    assert str(st.genotype) == best["genotype"]


def test_an_interrupted_search_says_how_to_resume(monkeypatch, tmp_path):
    import stylenas_cli.nas as nas
    from stylenas_cli.cli.search import search_command

    def interrupted(config, **hooks):
        raise KeyboardInterrupt

    monkeypatch.setattr(nas, "search", interrupted)
    result = CliRunner().invoke(search_command, ["-o", str(tmp_path / "run")])
    assert result.exit_code == 130
    assert result.output.strip() == (
        "error: interrupted; finished candidates are saved: rerun with --resume"
    )


def test_a_run_folder_in_use_is_refused_untouched(photo_dir, pairs_dir, tmp_path):
    from stylenas_cli.cli.search import search_command
    from stylenas_cli.files import exclusive_dir

    out = tmp_path / "run"
    args = [
        *("--train-data", photo_dir, "--val-pairs", pairs_dir, "-o", out, "--budget", 2),
        *("--train-steps", 1, "--image-size", 48, "--val-size", 48, "--proxy", "train"),
    ]
    with exclusive_dir(out, "search"):
        result = CliRunner().invoke(search_command, list(map(str, args)))
        assert result.exit_code == 1
        assert result.output.strip() == (
            f"error: {out} is in use by another stylenas search (pid {os.getpid()}): wait "
            "for it to finish or choose another --out"
        )
        assert sorted(p.name for p in out.iterdir()) == [".lock"]
