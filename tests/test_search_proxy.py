"""The supernet proxy (nas/proxy.py), the search with it, and the strategy comparison on a
toy fitness (nas/compare.py)."""

from __future__ import annotations

import json
import math
import random
import statistics
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from conftest import write_photo
from stylenas_cli.decoder import Decoder
from stylenas_cli.genotype import N_BITS, NAMED, Genotype
from stylenas_cli.nas import SearchConfig, SearchError, search
from stylenas_cli.nas.compare import ScoreBook, best_so_far, compare_strategies, run_strategy
from stylenas_cli.nas.evolution import Scores, random_genotype
from stylenas_cli.nas.objectives import TrainSettings
from stylenas_cli.nas.proxy import (
    PROXY_SPACE,
    PROXY_WEIGHTS,
    SupernetObjective,
    idle_bits,
    prepare_proxy,
    score_pairs,
    search_genotype,
    shipped_genotype,
    supernet_state,
)
from stylenas_cli.nas.supernet import PHOTONET, WEIGHT_BITS, inherit

pytestmark = pytest.mark.usefixtures("one_thread", "fast_encoder")


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory) -> Path:
    """41 small photos: every 20th (00, 20, 40) is held aside, enough for one pair (a
    content and a style that differ)."""
    d = tmp_path_factory.mktemp("train")
    for k in range(41):
        write_photo(d / f"{k:02d}.jpg", (56, 48), ("astronaut", "coffee")[(k // 20) % 2])
    return d


@pytest.fixture(scope="module")
def supernet_file(tmp_path_factory, weights_file) -> Path:
    """A PhotoNet-layout supernet file with random weights (the fixture's photonas ones
    do not fit: a supernet is PhotoNet)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("supernet") / "supernet.pt"
    state = {k: v.half() for k, v in Decoder(PHOTONET).state_dict().items()}
    torch.save({"genotype": str(PHOTONET), "state_dict": state}, path)
    return path


def test_prepare_proxy_uses_only_held_aside_photos(train_dir, tmp_path):
    path = prepare_proxy(tmp_path, train_dir, pairs=1, size=32)
    v = torch.load(path, weights_only=True)
    assert v["contents"].shape == v["styles"].shape == (1, 3, 32, 32)
    assert v["names"] == ["00+20"]  # held aside: every 20th training photo
    assert prepare_proxy(tmp_path, train_dir, pairs=1, size=32) == path  # reused
    with pytest.raises(SearchError, match="holds aside 3 photos: too few for 2 pairs"):
        prepare_proxy(tmp_path / "b", train_dir, pairs=2, size=32)


def test_the_proxy_space_is_what_stylisation_uses():
    from stylenas_cli.genotype import BIT_NAMES
    from stylenas_cli.style import used_points

    # the decoder's own transfer points (d1 ... d5): off in the shipped pipeline
    assert sorted(BIT_NAMES[i] for i in idle_bits()) == [f"d{k}_transfer" for k in range(1, 6)]
    assert set(WEIGHT_BITS) < set(PROXY_SPACE) and not set(idle_bits()) & set(PROXY_SPACE)
    for g in NAMED.values():
        kept = shipped_genotype(g)
        assert used_points(Decoder(kept).transfer_points) == used_points(Decoder(g).transfer_points)
        assert kept == shipped_genotype(kept) and len(Decoder(kept).state_dict()) == len(
            Decoder(g).state_dict()
        )


def test_supernet_objective_scores_the_inherited_decoder(train_dir, supernet_file, tmp_path):
    from stylenas_cli.model import Stylizer

    prepare_proxy(tmp_path, train_dir, pairs=1, size=32)
    settings = TrainSettings(str(train_dir), device="cpu")
    objective = SupernetObjective(str(tmp_path), str(supernet_file), settings, timing_runs=1)
    genotype = NAMED["photonas"]
    scores = objective(genotype)
    o = scores.objectives
    assert set(o) >= {"dssim", "gram", "lab_w1", "gflops", "params_m", "net_seconds", "quality"}
    assert all(math.isfinite(v) for v in o.values()) and 0 <= o["dssim"] <= 2
    assert o["net_seconds"] > 0 and o["lab_w1"] >= 0 and o["gram"] >= 0
    assert scores.fitness == pytest.approx(sum(w * o[k] for k, w in PROXY_WEIGHTS.items()))
    # The candidate checkpoint holds exactly the inherited tensors, and a stand-alone
    # Stylizer loaded from it scores the same pairs the same.
    ck = torch.load(tmp_path / scores.info["checkpoint"], weights_only=True)
    want = inherit(supernet_state(supernet_file), genotype)
    assert ck["state_dict"].keys() == want.keys()
    assert all(torch.equal(ck["state_dict"][k], want[k].half()) for k in want)
    alone = Stylizer(genotype).eval()  # a stand-alone decoder loaded with the same tensors
    alone.decoder.load_state_dict(want)
    v = torch.load(tmp_path / "validation.pt", weights_only=True)
    for k, x in score_pairs(alone, v["contents"], v["styles"]).items():
        assert x == pytest.approx(o[k], rel=1e-4, abs=1e-6), k
    # and the fp16 file loads where a network is named
    assert str(Stylizer.from_pretrained(str(genotype), tmp_path / scores.info["checkpoint"],
                                        "cpu").genotype) == str(genotype)  # fmt: skip


def test_a_supernet_search_runs_end_to_end(train_dir, supernet_file, tmp_path):
    from stylenas_cli.model import Stylizer

    out = tmp_path / "run"
    config = SearchConfig(
        out, train_dir, tmp_path / "unused", val_count=1, val_size=32, population=2,
        sample=1, budget=3, supernet=supernet_file, device="cpu",
    )  # fmt: skip
    summary = search(config, log=lambda m: None)
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    # --include photonas: its decoder (transfer bits off: the shipped pipeline has none)
    assert len(records) == 3
    assert records[0]["genotype"] == str(shipped_genotype(NAMED["photonas"]))
    for r in records:  # the proxy searches the bits the shipped pipeline uses, one name each
        g = Genotype(r["genotype"])
        assert all(g.bits[i] == "0" for i in range(N_BITS) if i not in PROXY_SPACE)
        assert search_genotype(g) == g
        assert "lab_w1" in r["objectives"] and r["error"] is None
    assert json.loads((out / "config.json").read_text())["proxy"] == "supernet"
    st = Stylizer.from_pretrained(str(out / "best.json"), device="cpu")
    assert str(st.genotype) == summary["genotype"]


def test_a_gflops_cap_is_a_number_or_an_architecture_and_matches_the_counted_cost():
    from stylenas_cli.decoder import decoder_flops
    from stylenas_cli.errors import StylenasError
    from stylenas_cli.nas.objectives import GflopsCap, gflops

    for g in (NAMED["photonas"], random_genotype(random.Random(5), PROXY_SPACE)):
        assert gflops(g) == pytest.approx(decoder_flops(Decoder(g), 64, 64) * 64 / 1e9)
    cap = GflopsCap.of("photonas")
    assert cap.limit == pytest.approx(gflops(NAMED["photonas"])) and 70 < cap.limit < 75
    assert cap(NAMED["photonas"]) and not cap(NAMED["photonet"])
    assert GflopsCap.of("300")(NAMED["photonet"]) and GflopsCap.of(100.0).limit == 100.0
    for bad in ("-1", "nan", 0.0):
        with pytest.raises(SearchError, match="positive number or an architecture"):
            GflopsCap.of(bad)
    with pytest.raises(StylenasError, match="unknown architecture"):
        GflopsCap.of("photonass")


def test_a_capped_supernet_search_scores_only_genotypes_within_the_cap(
    train_dir, supernet_file, tmp_path
):
    from stylenas_cli.errors import StylenasError
    from stylenas_cli.nas.objectives import gflops

    out = tmp_path / "run"
    config = SearchConfig(
        out, train_dir, tmp_path / "unused", val_count=1, val_size=32, population=3,
        sample=2, budget=6, supernet=supernet_file, device="cpu", max_gflops="photonas",
    )  # fmt: skip
    search(config, log=lambda m: None)
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    limit = gflops(NAMED["photonas"])
    assert len(records) == 6
    assert all(r["objectives"]["gflops"] <= limit + 1e-6 for r in records)
    assert json.loads((out / "config.json").read_text())["max_gflops"] == pytest.approx(limit)
    with pytest.raises(StylenasError, match="max_gflops was"):  # a resume keeps the cap
        search(SearchConfig(**{**vars(config), "resume": True, "max_gflops": 100}))
    photonet = SearchConfig(**{**vars(config), "out": tmp_path / "b", "include": "photonet"})
    with pytest.raises(SearchError, match="does not meet the cost cap"):
        search(photonet)
    assert not (tmp_path / "b").exists()


def test_search_cli_refuses_a_missing_supernet(train_dir, tmp_path):
    from stylenas_cli.cli.search import search_command

    missing = tmp_path / "nope.pt"
    args = ["--train-data", str(train_dir), "--supernet", str(missing), "-o", str(tmp_path / "r")]
    result = CliRunner().invoke(search_command, args)
    assert result.exit_code == 1
    assert result.output.strip().startswith(f"error: supernet weights not found: {missing}")
    assert not (tmp_path / "r").exists()


# --- strategies on a toy fitness --------------------------------------------------------------


def _toy(target: Genotype):
    """Hamming distance to a hidden genotype over the weight bits: a landscape where local
    moves help (what evolution bets on), known optimum 0."""

    def evaluate(g: Genotype) -> Scores:
        d = sum(g.bits[i] != target.bits[i] for i in WEIGHT_BITS)
        return Scores({"d": float(d)}, float(d))

    return evaluate


def test_evolution_beats_random_on_a_smooth_toy_fitness_over_seeds():
    target = random_genotype(random.Random(7), WEIGHT_BITS)
    report = compare_strategies(
        _toy(target), budget=120, seeds=range(5), space=WEIGHT_BITS, population=20, sample=5
    )
    for strategy in ("evolution", "random"):
        r = report[strategy]
        assert len(r["curves"]) == 5 and all(len(c) == 120 for c in r["curves"])
        assert all(a >= b for c in r["curves"] for a, b in zip(c, c[1:]))  # best so far
        assert r["mean"][-1] == pytest.approx(statistics.fmean(r["final"]))
    evo, rnd = report["evolution"]["final"], report["random"]["final"]
    assert statistics.fmean(evo) < statistics.fmean(rnd) - 1  # by more than a bit
    assert report["evolution"]["curves"][0] != report["evolution"]["curves"][1]  # seeds differ


def test_a_strategy_run_is_reproducible_and_counts_distinct_models():
    evaluate = _toy(NAMED["photonas"])
    a = run_strategy("evolution", evaluate, 30, seed=3, space=WEIGHT_BITS, population=5, sample=2)
    b = run_strategy("evolution", evaluate, 30, seed=3, space=WEIGHT_BITS, population=5, sample=2)
    assert [r.genotype for r in a] == [r.genotype for r in b]
    assert len({r.genotype for r in a}) == 30
    with pytest.raises(ValueError, match="unknown strategy"):
        run_strategy("annealing", evaluate, 3, 0, WEIGHT_BITS)


def test_strategies_compare_under_the_searchs_rules():
    from stylenas_cli.nas.objectives import GflopsCap, gflops

    cap = GflopsCap(100.0)
    report = compare_strategies(
        _toy(NAMED["photonas"]), budget=25, seeds=range(2), space=PROXY_SPACE, population=8,
        sample=3, feasible=cap, normalise=search_genotype,
    )  # fmt: skip
    for strategy in ("evolution", "random"):
        winners = [Genotype(g) for g in report[strategy]["winners"]]
        assert all(cap(g) and search_genotype(g) == g for g in winners)
        assert all(len(c) == 25 for c in report[strategy]["curves"])
    assert gflops(NAMED["photonet"]) > cap.limit  # the cap binds in this space


def test_score_book_memoises_on_disk_and_survives_a_torn_line(tmp_path):
    calls = []

    def evaluate(g: Genotype) -> Scores:
        calls.append(g)
        return Scores({"n": float(g.n_on)}, float(g.n_on)) if g.n_on else Scores.failure("x")

    path = tmp_path / "scores.jsonl"
    book = ScoreBook(evaluate, path)
    g1, g0 = NAMED["photonas"], Genotype("0" * N_BITS)
    assert book(g1).fitness == g1.n_on and book(g1).fitness == g1.n_on and len(calls) == 1
    assert book(g0).failed
    with path.open("a") as f:
        f.write('{"genotype": "01')  # a run killed mid-write
    again = ScoreBook(evaluate, path)
    assert again(g1).fitness == g1.n_on and again(g0).fitness == math.inf
    assert len(calls) == 2 and again.new == 0


def test_best_so_far_follows_proposal_order():
    from stylenas_cli.nas.evolution import Result

    results = [Result(NAMED["photonas"], Scores({}, f), index=i) for i, f in [(1, 2.0), (0, 3.0)]]
    assert best_so_far(results) == [3.0, 2.0]


def test_search_cli_prints_the_pareto_front(train_dir, supernet_file, tmp_path):
    from stylenas_cli.cli.search import search_command

    out = tmp_path / "run"
    args = ["--train-data", train_dir, "--supernet", supernet_file, "-o", out, "--budget", 2]
    args += ["--population", 2, "--sample", 1, "--val-count", 1, "--val-size", 32]
    result = CliRunner().invoke(search_command, list(map(str, args)))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out / "best.json")  # stdout: what a pipeline reads
    best = json.loads((out / "best.json").read_text())
    assert "Pareto front" in result.stderr and "lab_w1" in result.stderr
    for row in best["pareto_front"]:
        assert row["genotype"] in result.stderr


def test_score_pairs_measures_whole_gram_matrices_and_colours(monkeypatch, train_dir, tmp_path):
    """With the stylisation replaced by 'return the content', the proxy's numbers are the
    metrics of the content against the style, computed here from the definitions."""
    import stylenas_cli.nas.proxy as proxy
    from stylenas_cli.evaluation.metrics import gram_distance, grams_of, lab_w1, ssim
    from stylenas_cli.model import Stylizer

    prepare_proxy(tmp_path, train_dir, pairs=1, size=48)
    v = torch.load(tmp_path / "validation.pt", weights_only=True)
    c, s = v["contents"], v["styles"]
    monkeypatch.setattr(proxy, "shipped_stylize", lambda st, content, style: content.clone())
    st = Stylizer(NAMED["photonas"]).eval()
    got = score_pairs(st, c, s)
    with torch.no_grad():
        want = gram_distance(grams_of(st.encoder(c)), grams_of(st.encoder(s)))
    assert got["gram"] == pytest.approx(want, rel=1e-5) and want > 0.01
    assert got["lab_w1"] == pytest.approx(lab_w1(c[0], s[0]), rel=1e-6)
    assert got["dssim"] == pytest.approx(1 - ssim(c[0], c[0]), abs=1e-9)  # its own content: 0


# --- re-ranking the fittest by short training -------------------------------------------------


def test_fittest_takes_distinct_genotypes_and_skips_failures():
    from stylenas_cli.nas.rerank import fittest

    a, b, c = (str(random_genotype(random.Random(k), PROXY_SPACE)) for k in range(3))
    records = [
        {"genotype": a, "fitness": 2.0},
        {"genotype": b, "fitness": None},  # failed
        {"genotype": c, "fitness": 1.0},
        {"genotype": a, "fitness": 2.0},  # a duplicate reuses its score
    ]
    assert fittest(records, 5) == [c, a] and fittest(records, 1) == [c]


def test_dominating_the_reference_means_no_worse_in_structure_style_and_cost():
    from stylenas_cli.nas.rerank import dominates_reference

    ref = {"objectives": {"dssim": 0.2, "gram": 0.3, "gflops": 70.0, "lab_w1": 2.0}}

    def row(**kw):
        return {"objectives": ref["objectives"] | kw}

    assert dominates_reference(row(dssim=0.19), ref)
    assert dominates_reference(row(gflops=60.0, lab_w1=9.0), ref)  # lab_w1 is not a criterion
    assert not dominates_reference(row(), ref)  # equal is not better
    assert not dominates_reference(row(dssim=0.1, gram=0.31), ref)  # a trade, not a win
    assert not dominates_reference(row(dssim=0.1, gflops=70.5), ref)  # costlier


def test_rerank_trains_the_fittest_and_picks_the_winner_after_training(
    train_dir, supernet_file, tmp_path, monkeypatch
):
    from stylenas_cli.model import Stylizer
    from stylenas_cli.nas import rerank as rr
    from stylenas_cli.nas.evolution import scalarise

    out = tmp_path / "run"
    config = SearchConfig(
        out, train_dir, tmp_path / "unused", val_count=1, val_size=32, population=3,
        sample=1, budget=4, supernet=supernet_file, device="cpu", rerank=2,
        train_steps=2, image_size=32, batch=1,
    )  # fmt: skip
    summary = search(config, log=lambda m: None)
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    lines = [json.loads(x) for x in (out / "rerank.jsonl").read_text().splitlines()]
    two = sorted(records, key=lambda r: r["fitness"])[:2]
    reference = str(shipped_genotype(NAMED["photonas"]))  # --include: trained alike
    assert {r["genotype"] for r in lines} == {r["genotype"] for r in two} | {reference}
    best = json.loads((out / "best.json").read_text())
    win = min(lines, key=lambda r: r["fitness"])
    assert best["genotype"] == summary["genotype"] == win["genotype"]
    assert best["supernet_winner"]["genotype"] == two[0]["genotype"]
    assert [r["genotype"] for r in best["rerank"]] == [
        r["genotype"] for r in sorted(lines, key=lambda r: r["fitness"])
    ]
    assert best["rerank_reference"] == reference
    ref = next(r for r in lines if r["genotype"] == reference)
    for row in best["rerank"]:  # marked against the reference trained alike
        assert row["dominates_reference"] == rr.dominates_reference(row, ref)
    assert not next(r for r in best["rerank"] if r["genotype"] == reference)["dominates_reference"]
    for line in lines:  # fitness is the run's weighted sum of what training scored
        assert line["fitness"] == pytest.approx(scalarise(line["objectives"], PROXY_WEIGHTS))
        trained = torch.load(out / line["checkpoint"], weights_only=True)
        decoder = Genotype(line["genotype"]).without_transfers()  # what training trains
        assert trained["step"] == 2 and trained["genotype"] == str(decoder)
        inherited = inherit(supernet_state(supernet_file), Genotype(line["genotype"]))
        assert any(
            not torch.equal(trained["state_dict"][k], v.half()) for k, v in inherited.items()
        )
    st = Stylizer.from_pretrained(str(out / "best.json"), device="cpu")  # loads the trained one
    want = torch.load(out / best["checkpoint"], weights_only=True)["state_dict"]
    assert best["checkpoint"].startswith("rerank/")
    assert all(torch.equal(st.decoder.state_dict()[k].half(), want[k]) for k in want)
    # A resumed run trains nothing again and names the same winner.
    monkeypatch.setattr(rr, "retrain", lambda *a: pytest.fail("re-ranked again"))
    again = search(SearchConfig(**{**vars(config), "resume": True}), log=lambda m: None)
    assert again["genotype"] == win["genotype"] and again["rerank"] == best["rerank"]


def test_transfer_variants_are_measured_with_one_trained_decoder(
    train_dir, supernet_file, tmp_path
):
    from stylenas_cli.genotype import BIT_NAMES
    from stylenas_cli.model import Stylizer
    from stylenas_cli.nas.rerank import retrain

    prepare_proxy(tmp_path, train_dir, pairs=1, size=32)
    settings = TrainSettings(str(train_dir), steps=2, batch=1, size=32, device="cpu")
    objective = SupernetObjective(str(tmp_path), str(supernet_file), settings, timing_runs=0)
    g = search_genotype(NAMED["photonas"])
    variant = g.flip(BIT_NAMES.index("s1_transfer"))  # photonas with a WCT at relu4_1
    first, second = retrain(objective, g), retrain(objective, variant)
    assert first["checkpoint"] == second["checkpoint"] == f"rerank/{g.without_transfers()}.pt"
    assert first["train_seconds"] > 0 and second["train_seconds"] == 0  # trained once
    st = Stylizer.from_pretrained(str(variant), tmp_path / second["checkpoint"], "cpu").eval()
    st.weights_id = None
    measured = objective.measure(st)
    assert {k: second["objectives"][k] for k in ("dssim", "gram")} == pytest.approx(
        {k: measured[k] for k in ("dssim", "gram")}
    )
    assert second["objectives"]["gram"] != pytest.approx(first["objectives"]["gram"])  # the WCT
    # Three seeds: the first training is reused, two more are made; scores are their mean.
    three = retrain(objective, g, seeds=3)
    assert three["seeds"] == 3 and len(three["per_seed"]) == 3
    # (read back from its fp16 file: equal to the first measurement within rounding)
    assert three["per_seed"][0]["dssim"] == pytest.approx(first["objectives"]["dssim"], rel=1e-3)
    assert (tmp_path / "rerank" / f"{g.without_transfers()}-s2.pt").is_file()
    for k in ("dssim", "gram", "lab_w1"):
        assert three["objectives"][k] == pytest.approx(
            statistics.fmean(o[k] for o in three["per_seed"])
        )
    assert len({o["gram"] for o in three["per_seed"]}) == 3  # three different trainings


def test_rerank_needs_the_supernet_proxy(train_dir, tmp_path):
    config = SearchConfig(tmp_path / "r", train_dir, tmp_path, proxy="train", rerank=2)
    with pytest.raises(SearchError, match="--rerank re-ranks a supernet search"):
        search(config)
    assert not (tmp_path / "r").exists()


def test_search_cli_prints_the_reranked_genotypes(train_dir, supernet_file, tmp_path):
    from stylenas_cli.cli.search import search_command

    out = tmp_path / "run"
    args = ["--train-data", train_dir, "--supernet", supernet_file, "-o", out, "--budget", 2]
    args += ["--population", 2, "--sample", 1, "--val-count", 1, "--val-size", 32]
    args += ["--rerank", 1, "--train-steps", 1, "--image-size", 32, "--batch", 1]
    result = CliRunner().invoke(search_command, list(map(str, args)))
    assert result.exit_code == 0, result.output
    best = json.loads((out / "best.json").read_text())
    assert "re-ranked by training" in result.stderr
    assert f"{best['rerank'][0]['genotype']}  fitness {best['fitness']:.4f}" in result.stderr
