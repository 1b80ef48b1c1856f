"""``stylenas eval`` / ``bench-speed``: pair discovery, scoring, report files, CLI exit codes."""

from __future__ import annotations

import csv
import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import write_labels, write_photo
from stylenas_cli.cli.eval import bench_speed_command, eval_command, parse_weights
from stylenas_cli.errors import StylenasError
from stylenas_cli.evaluation import (
    COLUMNS,
    REFERENCE,
    EvalConfig,
    EvalError,
    SpeedReport,
    SpeedRow,
    evaluate,
    find_pairs,
    runner,
    speed_markdown,
    summarise,
    wins_losses,
)

pytestmark = pytest.mark.usefixtures("one_thread", "fast_encoder")

SIZE = (64, 48)  # (width, height) of the test contents
STYLE_SIZE = (64, 64)
OURS = "ours-photonas"


def make_pairs(root: Path, names=("a", "b"), masks: bool = False) -> Path:
    """content/ style/ other/ (+ content_seg/ style_seg/): ``other`` holds a copy of each
    content at another size, so it scores as 'do nothing'."""
    (root / "other").mkdir(parents=True, exist_ok=True)
    for name in names:
        content = write_photo(root / "content" / f"{name}.png", size=SIZE)
        write_photo(root / "style" / f"{name}.png", size=STYLE_SIZE, source="coffee")
        with Image.open(content) as img:
            img.resize((96, 72), Image.Resampling.LANCZOS).save(root / "other" / f"{name}.png")
        if masks:
            write_labels(root / "content_seg" / f"{name}.png", SIZE)
            write_labels(root / "style_seg" / f"{name}.png", STYLE_SIZE, split=0.3)
    return root


@pytest.fixture
def pairs(tmp_path) -> Path:
    return make_pairs(tmp_path / "pairs")


@pytest.fixture
def small_gram(monkeypatch):
    """Gram features at 64 px instead of EVAL.md's 512 (the same code path, ~50x quicker)."""
    monkeypatch.setattr(runner, "GRAM_LONG_SIDE", 64)


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


# --- pair discovery ------------------------------------------------------------------------


def test_find_pairs_matches_stems_and_tells_masks_from_methods(tmp_path):
    root = make_pairs(tmp_path / "p", masks=True)
    (root / ".hidden").mkdir()
    (root / "empty_method").mkdir()
    write_photo(root / "notes" / "unrelated.png")  # no output for any pair: not a method
    found, others = find_pairs(root)
    assert [p.name for p in found] == ["a", "b"]
    assert others == ["other"]  # not the *_seg, hidden, empty or unrelated folders
    a = found[0]
    assert a.content.parent.name == "content" and a.style.parent.name == "style"
    assert a.content_seg and a.style_seg and set(a.others) == {"other"}


def test_find_pairs_reports_what_is_missing(tmp_path):
    with pytest.raises(EvalError, match="not found"):
        find_pairs(tmp_path / "nope")
    (tmp_path / "e").mkdir()
    with pytest.raises(EvalError, match="no content/ folder"):
        find_pairs(tmp_path / "e")
    root = make_pairs(tmp_path / "p", names=("a", "b"))
    (root / "style" / "b.png").unlink()
    with pytest.raises(EvalError, match="no style for content b"):
        find_pairs(root)


def test_eval_error_is_a_stylenas_error():
    assert issubclass(EvalError, StylenasError)


# --- a whole evaluation --------------------------------------------------------------------


def test_evaluate_writes_csv_markdown_and_contact_sheet(pairs, tmp_path, weights_file):
    out = tmp_path / "report"
    cfg = EvalConfig(archs=("photonas",), weights={"photonas": weights_file}, gram_size=64)
    steps = []
    report = evaluate(pairs, out, cfg, on_pair=lambda d, t, n: steps.append((d, t, n)))
    assert steps[0] == (0, 2, "") and steps[-1] == (2, 2, "b")

    methods = [OURS, "reinhard", "histogram", "other"]
    assert [m.name for m in report.methods] == methods
    rows = _read_csv(out / "scores.csv")
    assert list(rows[0]) == list(COLUMNS)
    assert sorted((r["pair"], r["method"]) for r in rows) == sorted(
        (p, m) for p in ("a", "b") for m in methods
    )
    for r in rows:
        assert (int(r["width"]), int(r["height"])) == SIZE
        assert all(math.isfinite(float(r[k])) for k in ("ssim", "lab_w1", "gram", "gram_c"))
        assert (r["seconds"] == "") == (r["kind"] == "other")  # others' outputs are not timed
        # Our output was saved where the report says, at the content's size.
    for p in ("a", "b"):
        with Image.open(out / "outputs" / OURS / f"{p}.png") as img:
            assert img.size == SIZE

    # 'other' holds the contents themselves (resized): structure ~kept, no colour gain.
    other = [r for r in rows if r["method"] == "other"]
    assert all(float(r["ssim"]) > 0.9 for r in other)
    assert all(abs(float(r["gain"])) < 0.1 for r in other)
    # The colour transfers close most of the colour gap.
    assert all(float(r["gain"]) > 0.5 for r in rows if r["method"] == "reinhard")

    md = (out / "summary.md").read_text()
    for m in [*methods, REFERENCE]:
        assert f"| {m} |" in md
    assert "± " in md and "wins" in md.lower()
    assert md == report.markdown

    # Failures first: our worst pairs by gram, then by ssim, then every pair in order.
    ours = {r["pair"]: r for r in rows if r["method"] == OURS}
    by_gram = sorted(ours, key=lambda p: -float(ours[p]["gram"]))
    by_ssim = sorted(ours, key=lambda p: float(ours[p]["ssim"]))
    assert f"Worst pairs of {OURS}" in md
    assert f"| 1 | {by_gram[0]} | {float(ours[by_gram[0]]['gram']):.3f} | {by_ssim[0]} |" in md
    with Image.open(out / "contact_sheet.png") as sheet:
        assert sheet.format == "PNG"
        assert sheet.width == cfg.cell * (2 + len(methods))
        assert sheet.height == 20 + (2 + 2 + 2) * cfg.cell
        sheet = np.asarray(sheet.convert("RGB"))
    c = cfg.cell

    def row(i: int) -> np.ndarray:  # a row's images, below its label
        return sheet[20 + i * c + 24 : 20 + (i + 1) * c, c:]

    assert np.array_equal(row(0), row(4 + ["a", "b"].index(by_gram[0])))
    assert np.array_equal(row(2), row(4 + ["a", "b"].index(by_ssim[0])))
    assert sorted(out.rglob(".*.tmp")) == []


def test_evaluate_with_masks_adds_masked_variants(tmp_path, weights_file):
    root = make_pairs(tmp_path / "p", names=("a",), masks=True)
    cfg = EvalConfig(weights={"photonas": weights_file}, baselines=(), gram_size=64)
    report = evaluate(root, tmp_path / "r", cfg)
    assert [m.name for m in report.methods] == [OURS, OURS + "+masks", "other"]
    rows = {(r["method"], r["pair"]) for r in report.rows}
    assert rows == {(OURS, "a"), (OURS + "+masks", "a"), ("other", "a")}
    report = evaluate(root, tmp_path / "r2", replace(cfg, masks=False))
    assert [m.name for m in report.methods] == [OURS, "other"]


def test_evaluate_accepts_masks_off_by_rounding_only(tmp_path, weights_file):
    # DPST's published pair 07 has a 700x393 mask for a 700x394 photo.
    root = make_pairs(tmp_path / "p", names=("a",), masks=True)
    write_labels(root / "content_seg" / "a.png", (SIZE[0], SIZE[1] - 1))
    cfg = EvalConfig(weights={"photonas": weights_file}, baselines=(), gram_size=64)
    report = evaluate(root, tmp_path / "r", cfg)
    assert (OURS + "+masks", "a") in {(r["method"], r["pair"]) for r in report.rows}

    write_labels(root / "content_seg" / "a.png", (SIZE[0] // 2, SIZE[1] // 2))
    with pytest.raises(EvalError, match=r"mask is 32x24 but its image is 64x48"):
        evaluate(root, tmp_path / "r2", cfg)


def test_evaluate_refuses_to_overwrite_a_report(pairs, tmp_path, weights_file):
    out = tmp_path / "report"
    out.mkdir()
    (out / "summary.md").write_text("earlier")
    cfg = EvalConfig(weights={"photonas": weights_file}, gram_size=64, limit=1)
    with pytest.raises(EvalError, match="summary.md exists; pass --overwrite"):
        evaluate(pairs, out, cfg)
    assert (out / "summary.md").read_text() == "earlier"


def test_evaluate_rejects_weights_for_an_arch_not_asked_for(pairs, tmp_path, weights_file):
    cfg = EvalConfig(archs=("photonas",), weights={"photonet": weights_file})
    with pytest.raises(EvalError, match="photonet"):
        evaluate(pairs, tmp_path / "r", cfg)


# --- summaries -----------------------------------------------------------------------------


def _row(pair, method, ssim, lab_w1, gram):
    return {
        "pair": pair,
        "method": method,
        "ssim": ssim,
        "edge_ssim": ssim,
        "lab_w1": lab_w1,
        "gain": 1 - lab_w1 / 10,
        "gram": gram,
        "lab_c": 10.0,
        "gram_c": 1.0,
    }


def test_summary_means_stds_and_the_content_reference():
    rows = [_row("a", "x", 0.8, 2.0, 0.2), _row("b", "x", 0.6, 4.0, 0.4)]
    s = summarise(rows, ["x"])
    assert s["x"]["ssim"]["mean"] == pytest.approx(0.7)
    assert s["x"]["ssim"]["std"] == pytest.approx(np.std([0.8, 0.6], ddof=1))
    assert s["x"]["lab_w1"]["n"] == 2
    assert s[REFERENCE]["lab_w1"]["mean"] == 10.0 and s[REFERENCE]["gain"]["mean"] == 0.0


def test_wins_respect_the_direction_of_each_metric():
    rows = [
        _row("a", "x", 0.9, 2.0, 0.5),  # x: better ssim, better (lower) lab_w1, worse gram
        _row("a", "y", 0.5, 3.0, 0.1),
        _row("b", "x", 0.9, 3.0, 0.5),  # lab_w1 tie on b
        _row("b", "y", 0.5, 3.0, 0.1),
        _row("c", "x", 0.9, 1.0, 0.5),  # c: y has no output
    ]
    w = wins_losses(rows, ["x", "y"])["x"]["y"]
    assert w["ssim"] == [2, 0, 0]
    assert w["lab_w1"] == [1, 0, 1]
    assert w["gram"] == [0, 2, 0]


# --- CLI -----------------------------------------------------------------------------------


def test_parse_weights_pairs_and_bare_paths():
    assert parse_weights(("photonet=w.pt",), ("photonas", "photonet")) == {"photonet": Path("w.pt")}
    assert parse_weights(("w.pt",), ("photonas",)) == {"photonas": Path("w.pt")}


def test_cli_missing_folder_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(eval_command, [str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_cli_empty_folder_is_one_clean_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(eval_command, [str(tmp_path / "empty"), "-o", str(tmp_path / "r")])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = _error_lines(result)
    assert len(errors) == 1 and "no content/ folder" in errors[0]
    assert not (tmp_path / "r").exists()


def test_cli_too_small_content_is_one_clean_error(pairs, tmp_path, weights_file):
    write_photo(pairs / "content" / "a.png", size=(20, 48))
    argv = [str(pairs), "--weights", str(weights_file), "-o", str(tmp_path / "r"), "--limit", "1"]
    result = CliRunner().invoke(eval_command, [*argv, "-q"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = _error_lines(result)
    assert len(errors) == 1 and "content is 20x48; both sides must be >= 32 px" in errors[0]
    assert str(pairs / "content" / "a.png") in errors[0]


def test_cli_weights_for_another_arch_is_a_usage_error(pairs, weights_file):
    argv = [str(pairs), "--arch", "photonas", "--arch", "photonet", "--weights", "wct5=x.pt"]
    result = CliRunner().invoke(eval_command, argv)
    assert result.exit_code == 2
    assert "ARCH=PATH" in result.stderr


def test_cli_json_report_then_refuses_to_overwrite(pairs, tmp_path, weights_file, small_gram):
    out = tmp_path / "r"
    argv = [str(pairs), "--arch", "photonas", "--weights", f"photonas={weights_file}"]
    argv += ["-o", str(out), "--limit", "1", "--json", "-q"]
    result = CliRunner().invoke(eval_command, argv)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["meta"]["pairs"] == 1
    assert {m["name"] for m in data["methods"]} == {OURS, "reinhard", "histogram", "other"}
    assert 0 < data["summary"][OURS]["ssim"]["mean"] <= 1
    assert Path(data["files"]["csv"]).is_file()

    again = CliRunner().invoke(eval_command, argv)
    assert again.exit_code == 1
    assert "--overwrite" in _error_lines(again)[0]
    assert CliRunner().invoke(eval_command, [*argv, "--overwrite"]).exit_code == 0


def test_cli_markdown_on_stdout(pairs, tmp_path, weights_file, small_gram):
    shutil.rmtree(pairs / "other")
    argv = [str(pairs), "--weights", str(weights_file), "-o", str(tmp_path / "r"), "--limit", "1"]
    result = CliRunner().invoke(eval_command, argv)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# Evaluation")
    assert f"| {OURS} | 1 |" in result.stdout


def test_bench_speed_report_has_floor_style_pass_and_ratios():
    argv = ["--arch", "photonas", "--arch", "photonet", "--sizes", "64", "--repeats", "1"]
    argv += ["--work-size", "32", "--style-size", "64", "--no-overhead", "--precision", "fp32"]
    result = CliRunner().invoke(bench_speed_command, [*argv, "--json", "-q"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["precision"] == "fp32" and report["work_size"] == 32
    assert report["floor"]["64"] > 0
    assert [s["arch"] for s in report["styles"]] == ["photonas", "photonet"]
    assert all(s["seconds"] > 0 and s["encoder_seconds"] > 0 for s in report["styles"])
    rows = report["rows"]
    assert [(r["method"], r["mode"]) for r in rows] == [
        ("photonas", "native"),
        ("photonas", "lifted"),
        ("photonet", "native"),
        ("photonet", "lifted"),
        ("reinhard", "baseline"),
        ("histogram", "baseline"),
    ]
    assert all(r["seconds"] > 0 and r["size"] == 64 for r in rows)
    assert all(r["seconds_per_mp"] == pytest.approx(r["seconds"] / (64 * 64 / 1e6)) for r in rows)
    nas, net = rows[0], rows[2]
    assert nas["params"] < net["params"] and nas["gflops_per_mp"] < net["gflops_per_mp"]

    # What the command prints: photonet is its own reference, ratios to the floor are real.
    rep = SpeedReport(
        report["precision"],
        report["work_size"],
        floor={64: report["floor"]["64"]},
        rows=[SpeedRow(**{k: v for k, v in r.items() if k != "seconds_per_mp"}) for r in rows],
    )
    table = speed_markdown(rep)
    line = next(x for x in table.splitlines() if x.startswith("| photonet |") and "native" in x)
    assert "| 1.00× |" in line
    floor_ratio = rows[2]["seconds"] / report["floor"]["64"]
    assert f"{floor_ratio:.2f}×" in line


def test_process_overhead_measures_a_fresh_interpreter():
    from stylenas_cli.evaluation.speed import process_overhead

    o = process_overhead(repeats=1)
    assert set(o) == {"help_s", "import_s", "build_s", "weights_s"}
    assert all(v > 0 for v in o.values())
    assert o["help_s"] < o["import_s"] + o["build_s"]  # --help imports no torch


def test_bench_speed_rejects_bad_sizes():
    result = CliRunner().invoke(bench_speed_command, ["--sizes", "64,abc"])
    assert result.exit_code == 2
