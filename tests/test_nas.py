"""The real objectives (nas.py) and the `search` / `prune` commands (cli_search.py), tiny."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from skimage import data

from stylenas_cli.cli import main
from stylenas_cli.decoder import Decoder
from stylenas_cli.genotype import NAMED, Genotype
from stylenas_cli.nas import (
    PStepObjective,
    TrainSettings,
    derive_seed,
    find_pairs,
    gram_loss,
    prepare_pstep,
    pstep_score,
    spread,
)
from stylenas_cli.search import evolve, random_genotype

pytestmark = pytest.mark.usefixtures("one_thread", "fast_encoder")
SOURCES = ("astronaut", "chelsea", "coffee", "rocket")


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("train")
    for name in SOURCES:
        Image.fromarray(getattr(data, name)()).resize((80, 60)).save(d / f"{name}.jpg")
    return d


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pairs")
    for k, (c, s) in enumerate([("astronaut", "coffee"), ("chelsea", "rocket")]):
        for sub, name in (("content", c), ("style", s)):
            (d / sub).mkdir(exist_ok=True)
            Image.fromarray(getattr(data, name)()).resize((64, 48)).save(d / sub / f"{k:02d}.jpg")
    (d / "content" / "orphan.jpg").write_bytes((d / "content" / "00.jpg").read_bytes())
    return d


def _random_weights(path: Path, genotype: Genotype) -> Path:
    torch.manual_seed(1)
    state = {k: v.half() for k, v in Decoder(genotype).state_dict().items()}
    torch.save({"genotype": str(genotype), "state_dict": state}, path)
    return path


def test_pstep_score_on_known_numbers():
    # The reference winner's L_r and L_p with photonas's 7 bits on of 32.
    assert pstep_score(0.0044, 0.35, 7 / 32) == pytest.approx(
        0.8 * 0.0044 + 0.1 * 0.35 + 0.1 * 0.21875
    )
    assert pstep_score(1.0, 2.0, 0.5) == pytest.approx(0.8 + 0.2 + 0.05)
    assert pstep_score(1.0, 2.0, 0.5, {"l_r": 1.0, "l_p": 0.0, "l_m": 0.0}) == 1.0


def test_gram_loss_properties():
    torch.manual_seed(0)
    feats = {"a": torch.rand(1, 8, 5, 5), "b": torch.rand(1, 4, 3, 3)}
    assert gram_loss(feats, feats) == pytest.approx(0.0, abs=1e-7)
    doubled = {k: 2 * v for k, v in feats.items()}  # G scales by 4: ‖4G − G‖² / ‖G‖² = 9
    assert gram_loss(doubled, feats) == pytest.approx(9.0, rel=1e-5)
    shuffled = {k: v.flip(-1) for k, v in feats.items()}  # Gram ignores where things are
    assert gram_loss(shuffled, feats) == pytest.approx(0.0, abs=1e-6)


def test_pairs_spread_and_seeds(pairs_dir, tmp_path):
    pairs = find_pairs(pairs_dir)
    assert [c.stem for c, _ in pairs] == ["00", "01"]  # the orphan content has no style
    with pytest.raises(FileNotFoundError, match="content/ and style/"):
        find_pairs(tmp_path)
    assert spread(list(range(10)), 3) == [0, 4, 9] and spread([1, 2], 5) == [1, 2]
    g = NAMED["photonas"]
    assert derive_seed(0, g) == derive_seed(0, str(g)) != derive_seed(1, g)


def test_prune_students_are_sub_networks_of_the_teacher():
    teacher = random_genotype(random.Random(4))
    space = [i for i, b in enumerate(teacher.bits) if b == "1"]
    seen = []

    def fitness(g):
        from stylenas_cli.search import Scores

        seen.append(g)
        return Scores.of({"on": g.n_on}, {"on": 1.0})

    results = evolve(fitness, 25, 6, 2, random.Random(0), space=space)
    assert len(seen) == 25 and all(r.genotype.is_subnet_of(teacher) for r in results)


def test_pstep_teacher_scores_zero_against_itself(photo_dir, pairs_dir, tmp_path):
    """The teacher as its own student (its weights, no training) reproduces its outputs:
    L_r = L_p = 0, and the score is the formula on the measured terms."""
    from stylenas_cli.model import Stylizer

    teacher = NAMED["photonas"]
    weights = _random_weights(tmp_path / "teacher.pt", teacher)
    st = Stylizer.from_pretrained(teacher, weights, "cpu")
    prepare_pstep(tmp_path, pairs_dir, 2, 32, st)
    settings = TrainSettings(str(photo_dir), steps=0, batch=1, size=32, device="cpu")
    objective = PStepObjective(str(tmp_path), settings, init=str(weights))
    scores = objective(teacher)
    o = scores.objectives
    assert o["l_r"] == pytest.approx(0.0, abs=1e-6) and o["l_p"] == pytest.approx(0.0, abs=1e-6)
    assert o["l_m"] == teacher.n_on / 32
    assert scores.fitness == pytest.approx(pstep_score(o["l_r"], o["l_p"], o["l_m"]))
    assert (tmp_path / scores.info["checkpoint"]).is_file()
    assert sorted(p.name for p in (tmp_path / "teacher").iterdir()) == ["00.png", "01.png"]


def test_search_cli_end_to_end(photo_dir, pairs_dir, tmp_path):
    from stylenas_cli.cli.search import search_command
    from stylenas_cli.model import Stylizer, pil_to_tensor

    out = tmp_path / "run"
    args = [
        *("--train-data", photo_dir, "--val-pairs", pairs_dir, "-o", out),
        *("--budget", 3, "--population", 2, "--sample", 1, "--train-steps", 2),
        *("--image-size", 48, "--val-size", 48, "--batch", 2, "--val-photos", 1),
        *("--device", "cpu", "--json"),
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


def test_cli_errors_are_one_line(tmp_path, photo_dir):
    from stylenas_cli.cli.search import prune_command, search_command

    result = CliRunner().invoke(search_command, ["--train-data", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert result.output.strip() == f"error: training data folder not found: {tmp_path / 'nope'}"
    result = CliRunner().invoke(
        prune_command, ["--teacher", "photonas", "--teacher-weights", str(tmp_path / "w.pt")]
    )
    assert result.exit_code == 1 and result.output.startswith("error: weights file not found")
    weights = _random_weights(tmp_path / "w.pt", NAMED["photonas"])
    result = CliRunner().invoke(
        prune_command,
        [
            *("--teacher", "photonas", "--teacher-weights", str(weights)),
            *("--include", "photonet", "--train-data", str(photo_dir)),
            *("--val-pairs", str(tmp_path), "-o", str(tmp_path / "run")),
        ],
    )
    assert result.exit_code == 1 and "not a sub-network of the teacher" in result.output


def test_prune_cli_end_to_end(photo_dir, pairs_dir, tmp_path):
    from stylenas_cli.cli.search import prune_command
    from stylenas_cli.model import Stylizer

    teacher = NAMED["photonas"]
    weights = _random_weights(tmp_path / "teacher.pt", teacher)
    out = tmp_path / "prune"
    args = [
        *("--teacher", teacher, "--teacher-weights", weights, "--include", ""),
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
