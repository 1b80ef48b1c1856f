"""The real objectives (nas.objectives) and whole runs from Python (nas.run), tiny; the
`search` / `prune` commands over them are tested in test_search_cli.py."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image
from skimage import data

from stylenas_cli.decoder import Decoder
from stylenas_cli.errors import StylenasError
from stylenas_cli.evaluation import find_pairs
from stylenas_cli.evaluation.metrics import gram_distance, grams_of
from stylenas_cli.genotype import NAMED, Genotype
from stylenas_cli.nas import (
    PStepObjective,
    SearchConfig,
    TrainSettings,
    derive_seed,
    prepare_pstep,
    pstep_score,
    resolve_precision,
    search,
    short_train,
)
from stylenas_cli.nas.evolution import Scores, evolve, random_genotype
from stylenas_cli.nas.objectives import _stylize_all, pair_paths, spread
from stylenas_cli.train import default_warmup

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
    (d / "style" / "orphan.jpg").write_bytes((d / "style" / "00.jpg").read_bytes())
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
    # The search's gram objective is the evaluation's formula (one formula, one epsilon).
    torch.manual_seed(0)
    feats = {"a": torch.rand(1, 8, 5, 5), "b": torch.rand(1, 4, 3, 3)}

    def gram_loss(out, style):
        return gram_distance(grams_of(out), grams_of(style))

    assert gram_loss(feats, feats) == pytest.approx(0.0, abs=1e-7)
    doubled = {k: 2 * v for k, v in feats.items()}  # G scales by 4: ‖4G − G‖² / ‖G‖² = 9
    assert gram_loss(doubled, feats) == pytest.approx(9.0, rel=1e-5)
    shuffled = {k: v.flip(-1) for k, v in feats.items()}  # Gram ignores where things are
    assert gram_loss(shuffled, feats) == pytest.approx(0.0, abs=1e-6)


def test_pairs_spread_and_seeds(pairs_dir, tmp_path):
    pairs = pair_paths(pairs_dir)
    assert [c.stem for c, _ in pairs] == ["00", "01"]  # the orphan style has no content
    assert [s.parent.name for _, s in pairs] == ["style", "style"]
    with pytest.raises(StylenasError, match="content/ and style/"):
        find_pairs(tmp_path)
    # The evaluation's pair finder refuses a content without its style (it was skipped).
    orphan = tmp_path / "orphan"
    for sub in ("content", "style"):
        (orphan / sub).mkdir(parents=True)
    (orphan / "content" / "x.jpg").write_bytes((pairs_dir / "content" / "00.jpg").read_bytes())
    with pytest.raises(StylenasError, match="no style for content x"):
        pair_paths(orphan)
    assert spread(list(range(10)), 3) == [0, 4, 9] and spread([1, 2], 5) == [1, 2]
    g = NAMED["photonas"]
    assert derive_seed(0, g) == derive_seed(0, str(g)) != derive_seed(1, g)


def test_prune_students_are_sub_networks_of_the_teacher():
    teacher = random_genotype(random.Random(4))
    space = [i for i, b in enumerate(teacher.bits) if b == "1"]
    seen = []

    def fitness(g):
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


def test_training_settings_resolve_precision_and_warmup():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("auto", cpu) == "fp32" and resolve_precision("auto", cuda) == "bf16"
    assert resolve_precision("fp16", cpu) == "fp32"  # emulated on CPUs: never used there
    with pytest.raises(StylenasError, match="precision"):
        resolve_precision("fp8", cpu)
    cfg = TrainSettings("photos", steps=3000, device="cpu").config(steps=50)
    assert cfg.precision == "fp32" and cfg.steps == 50 and cfg.warmup == default_warmup(50) == 5


def test_short_train_is_train_fit_under_the_asked_precision(photo_dir, monkeypatch):
    import stylenas_cli.train as train
    from stylenas_cli.model import Stylizer

    seen = []

    def autocast(device, precision):
        seen.append(precision)
        return real(device, precision)

    real = train.autocast
    monkeypatch.setattr(train, "autocast", autocast)
    st = Stylizer(NAMED["photonas"])
    settings = TrainSettings(str(photo_dir), steps=2, batch=1, size=32, precision="bf16")
    assert math.isfinite(short_train(st, settings, seed=0))
    assert seen == ["bf16", "bf16"] and not st.decoder.training


def test_a_search_runs_from_python(photo_dir, pairs_dir, tmp_path):
    """No click: nas.search with a config, progress through the callbacks."""
    out = tmp_path / "run"
    config = SearchConfig(
        out,
        photo_dir,
        pairs_dir,
        val_count=1,
        val_size=32,
        population=2,
        sample=1,
        budget=2,
        include="photonas",
        train_steps=1,
        image_size=32,
        batch=1,
        proxy="train",
        device="cpu",
        final_steps=1,
        val_photos=1,
    )
    starts, results, steps = [], [], []
    summary = search(
        config,
        on_start=lambda *args: starts.append(args),
        on_result=lambda result, summary: results.append(result),
        on_step=lambda step, info: steps.append(step),
        log=lambda message: None,
    )
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    best = json.loads((out / "best.json").read_text())
    assert len(records) == len(results) == 2 and records[0]["genotype"] == str(NAMED["photonas"])
    assert all(r["error"] is None for r in records)
    winner = min(records, key=lambda r: r["fitness"])["genotype"]
    assert summary["run"] == str(out) and summary["genotype"] == best["genotype"] == winner
    assert starts == [("search", 2, 0, ""), ("final", 1, 0, winner)] and steps == [1]
    assert best["checkpoint"] == "winner.pt" and (out / "winner.pt").is_file()
    assert best["final"]["steps"] == 1 and {"recon", "gram", "dssim"} <= set(best["final"])
    saved = json.loads((out / "config.json").read_text())
    assert saved["command"] == "search" and saved["precision"] == "auto"
    assert saved["train"] == {
        "data": str(photo_dir.resolve()),
        **{"steps": 1, "batch": 1, "size": 32, "lr": 5e-4, "pixel_weight": 10.0},
    }
    # Resuming finds every candidate done; a second run in the same folder is refused.
    results.clear()
    again = search(
        replace(config, resume=True, final_steps=0), on_result=lambda r, _: results.append(r)
    )
    assert results == [] and again["genotype"] == winner
    with pytest.raises(StylenasError, match="--resume"):
        search(config)


def test_search_scores_a_genotype_with_the_shipped_stylisation():
    # A candidate is scored on what `stylenas stylize` gives (the default transfer settings,
    # working size and lift), not with the decoder's own transfer points switched on.
    from dataclasses import replace

    from stylenas_cli.config import DEFAULT_TRANSFER, DEFAULT_WORK_SIZE
    from stylenas_cli.model import Stylizer

    torch.manual_seed(0)
    st = Stylizer(NAMED["photonas"]).eval()
    assert "d5" in st.decoder.transfer_points
    content = torch.rand(1, 3, 48, 64)
    style = torch.rand(1, 3, 48, 64)
    shipped = st.stylize_at(content, style, 1.0, DEFAULT_TRANSFER, work_size=DEFAULT_WORK_SIZE)
    scored, _ = _stylize_all(st, {"contents": content, "styles": style})
    assert torch.allclose(scored, shipped)
    every_point = replace(DEFAULT_TRANSFER, decoder_transfers=True)
    assert (scored - st.stylize(content, style, settings=every_point)).abs().mean() > 1e-4
