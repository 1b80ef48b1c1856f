"""Pairs manifests (``stylenas stylize --pairs``): reading, planning, grouping, and runs whose
outputs equal one-style runs of the same photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import write_labels, write_photo
from stylenas_cli.cli import main
from stylenas_cli.files import OutputError
from stylenas_cli.jobs import (
    Job,
    ManifestError,
    group_jobs,
    plan_jobs,
    read_manifest,
)

pytestmark = pytest.mark.usefixtures("fast_encoder", "one_thread")


@pytest.fixture
def run(weights_file):
    def invoke(*args):
        argv = ["stylize", *map(str, args), "--weights", str(weights_file)]
        return CliRunner().invoke(main, argv)

    return invoke


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- reading -------------------------------------------------------------------------------


def test_csv_and_jsonl_give_the_same_jobs_relative_to_the_manifest(tmp_path):
    (tmp_path / "lib").mkdir()
    csv = _write(
        tmp_path / "lib" / "pairs.csv",
        "content,style,output,alpha\na.jpg,refs/s.jpg,out/a.png,0.5\n/abs/b.jpg,refs/t.jpg,,\n",
    )
    rows = [
        {"content": "a.jpg", "style": "refs/s.jpg", "output": "out/a.png", "alpha": 0.5},
        {"content": "/abs/b.jpg", "style": "refs/t.jpg"},
    ]
    jsonl = _write(tmp_path / "lib" / "pairs.jsonl", "\n".join(map(json.dumps, rows)) + "\n\n")
    base = tmp_path / "lib"
    expected = [
        Job(base / "a.jpg", base / "refs/s.jpg", base / "out/a.png", 0.5),
        Job(Path("/abs/b.jpg"), base / "refs/t.jpg"),
    ]
    assert read_manifest(csv) == expected
    assert read_manifest(jsonl) == expected


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("p.csv", "content,style\na.jpg,\n", "p.csv:2: the 'style' column is empty"),
        ("p.csv", "content,style,alpha\na.jpg,s.jpg,strong\n", "p.csv:2: alpha must be a number"),
        ("p.csv", "content,style,alpha\na.jpg,s.jpg,1.5\n", "between 0 and 1"),
        ("p.csv", "content,sytle\na.jpg,s.jpg\n", "unknown column 'sytle'"),
        ("p.csv", "a.jpg,s.jpg\n", "first row must name the columns"),
        ("p.csv", "content,style\na.jpg,s.jpg,extra\n", "p.csv:2: more cells"),
        ("p.csv", "content,style\n", "has no rows"),
        ("p.jsonl", '{"content": "a.jpg", "style": "s.jpg"}\n{oops\n', "p.jsonl:2: not a JSON"),
        ("p.jsonl", '["a.jpg", "s.jpg"]\n', "p.jsonl:1: each line must be a JSON object"),
        ("p.jsonl", '{"content": "a.jpg", "style": 3}\n', "'style' must be a path"),
    ],
)
def test_bad_manifests_are_refused_naming_file_and_line(tmp_path, name, text, fragment):
    with pytest.raises(ManifestError, match=None) as info:
        read_manifest(_write(tmp_path / name, text))
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_manifest_is_one_line(tmp_path):
    with pytest.raises(ManifestError, match="cannot read the pairs manifest"):
        read_manifest(tmp_path / "nope.csv")


# --- planning and grouping -----------------------------------------------------------------


def test_outputs_default_like_a_folder_run_and_collisions_are_refused(tmp_path):
    a, s, t = tmp_path / "a.jpg", tmp_path / "s.jpg", tmp_path / "t.jpg"
    [beside] = plan_jobs([Job(a, s)], None)
    assert beside.output == tmp_path / "a_stylized.jpg"
    [inside] = plan_jobs([Job(a, s)], tmp_path / "out")
    assert inside.output == tmp_path / "out" / "a_stylized.jpg"
    given = plan_jobs([Job(a, s, tmp_path / "x.png"), Job(a, t)], None)
    assert [j.output.name for j in given] == ["x.png", "a_stylized.jpg"]
    with pytest.raises(OutputError, match="written by two jobs"):
        plan_jobs([Job(a, s), Job(a, t)], None)  # one content, two styles, no outputs
    with pytest.raises(OutputError, match="image extension"):
        plan_jobs([Job(a, s, tmp_path / "x.txt")], None)


def test_jobs_group_by_style_strength_and_content_mask(tmp_path):
    p = tmp_path
    jobs = [
        Job(p / "1.jpg", p / "s.jpg"),
        Job(p / "2.jpg", p / "t.jpg"),
        Job(p / "3.jpg", p / "s.jpg"),
        Job(p / "4.jpg", p / "s.jpg", alpha=0.5),
        Job(p / "5.jpg", p / "s.jpg", content_mask=p / "m5.png"),
        Job(p / "6.jpg", p / "s.jpg", content_mask=p / "m6.png"),
    ]
    groups = [[j.content.name for j in g] for g in group_jobs(jobs)]
    expected = [["1.jpg", "3.jpg"], ["2.jpg"], ["4.jpg"], ["5.jpg"], ["6.jpg"]]
    assert sorted(groups) == sorted(expected)
    styles = [g[0].style.name for g in group_jobs(jobs)]
    assert styles == sorted(styles)  # a style's groups next to each other


# --- runs ----------------------------------------------------------------------------------


@pytest.fixture
def library(tmp_path):
    """Three contents, two styles, a manifest with one row per job (one per-row alpha)."""
    lib = tmp_path / "lib"
    write_photo(lib / "a.jpg")
    write_photo(lib / "b.png", size=(64, 96), source="coffee")
    write_photo(lib / "c.jpg", size=(72, 48))
    write_photo(lib / "s.jpg", size=(96, 80), source="coffee")
    write_photo(lib / "t.png", size=(64, 64))
    manifest = _write(
        lib / "pairs.csv",
        "content,style,output,alpha\n"
        "a.jpg,s.jpg,,\n"
        "b.png,t.png,,\n"
        "c.jpg,s.jpg,,0.5\n"
        "a.jpg,t.png,a_t.png,\n",
    )
    return lib, manifest


def test_manifest_run_equals_one_style_runs_and_reads_each_style_once(
    library, run, tmp_path, monkeypatch
):
    import stylenas_cli.model as model

    lib, manifest = library
    loads: list[str] = []
    real = model.Stylizer.load_style
    monkeypatch.setattr(
        model.Stylizer,
        "load_style",
        lambda self, path, *a, **k: loads.append(Path(path).name) or real(self, path, *a, **k),
    )
    out = tmp_path / "out"
    result = run("--pairs", manifest, "-o", out, "--json", "--no-cache")
    assert result.exit_code == 0, result.output
    assert sorted(loads) == ["s.jpg", "t.png"]  # each style summarised once
    records = [json.loads(x) for x in result.stdout.splitlines()]
    assert records[-1] == {"summary": {"written": 4, "skipped": 0, "failed": 0}}
    styles = {(Path(r["content"]).name, Path(r["style"]).name) for r in records[:-1]}
    pairs = {("a.jpg", "s.jpg"), ("b.png", "t.png"), ("c.jpg", "s.jpg"), ("a.jpg", "t.png")}
    assert styles == pairs
    # A row's own relative output is read from -o, like the planned ones.
    assert sorted(p.name for p in out.iterdir()) == [
        "a_stylized.jpg", "a_t.png", "b_stylized.png", "c_stylized.jpg"]  # fmt: skip
    assert not (lib / "a_t.png").exists()
    # The same photos one style at a time, the classic way.
    solo = tmp_path / "solo"
    assert run(lib / "a.jpg", lib / "s.jpg", "-o", solo / "a.jpg").exit_code == 0
    assert run(lib / "b.png", lib / "t.png", "-o", solo / "b.png").exit_code == 0
    assert run(lib / "c.jpg", lib / "s.jpg", "--alpha", "0.5", "-o", solo / "c.jpg").exit_code == 0
    assert run(lib / "a.jpg", lib / "t.png", "-o", solo / "a_t.png").exit_code == 0
    assert np.array_equal(_pixels(out / "a_stylized.jpg"), _pixels(solo / "a.jpg"))
    assert np.array_equal(_pixels(out / "b_stylized.png"), _pixels(solo / "b.png"))
    assert np.array_equal(_pixels(out / "c_stylized.jpg"), _pixels(solo / "c.jpg"))
    assert np.array_equal(_pixels(out / "a_t.png"), _pixels(solo / "a_t.png"))
    # alpha 0.5 really differs from full strength with the same style
    full = tmp_path / "c_full.jpg"
    assert run(lib / "c.jpg", lib / "s.jpg", "-o", full).exit_code == 0
    assert not np.array_equal(_pixels(full), _pixels(out / "c_stylized.jpg"))
    # Resuming: everything exists, nothing fails.
    again = run("--pairs", manifest, "-o", out, "--skip-existing", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout.splitlines()[-1])["summary"]["skipped"] == 4


def test_a_bad_style_fails_its_own_rows_and_the_report_retries_them(library, run, tmp_path):
    lib, _ = library
    _write(lib / "broken.jpg", "not a jpeg")
    manifest = _write(
        lib / "pairs.jsonl",
        json.dumps({"content": "a.jpg", "style": "broken.jpg"})
        + "\n"
        + json.dumps({"content": "b.png", "style": "s.jpg"})
        + "\n"
        + json.dumps({"content": "missing.jpg", "style": "s.jpg"})
        + "\n",
    )
    report = tmp_path / "failures.jsonl"
    out = tmp_path / "out"
    result = run("--pairs", manifest, "-o", out, "--failures", report)
    assert result.exit_code == 1
    assert (out / "b_stylized.png").is_file()
    assert not (out / "a_stylized.jpg").exists()
    errors = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 2 and "broken.jpg" in errors[0] + errors[1]
    failed = [json.loads(x) for x in report.read_text().splitlines()]
    assert {Path(f["content"]).name for f in failed} == {"a.jpg", "missing.jpg"}
    assert all(f["error"] for f in failed)
    # The report is a manifest: after fixing the style, it retries exactly the failures.
    retry = read_manifest(report)
    assert {(j.content.name, j.style.name) for j in retry} == {
        ("a.jpg", "broken.jpg"),
        ("missing.jpg", "s.jpg"),
    }
    assert all(j.output is not None and j.output.parent == out for j in retry)
    write_photo(lib / "broken.jpg", size=(64, 64))
    write_photo(lib / "missing.jpg", size=(64, 64))
    assert run("--pairs", report).exit_code == 0
    assert (out / "a_stylized.jpg").is_file() and (out / "missing_stylized.jpg").is_file()


def test_manifest_masks_are_used(library, run, tmp_path):
    lib, _ = library
    write_labels(lib / "a_mask.png", (80, 64))
    write_labels(lib / "s_mask.png", (96, 80))
    manifest = _write(
        lib / "m.csv",
        "content,style,output,content_mask,style_mask\n"
        "a.jpg,s.jpg,masked.png,a_mask.png,s_mask.png\n"
        "a.jpg,s.jpg,plain.png,,\n",
    )
    assert run("--pairs", manifest).exit_code == 0
    diff = np.abs(_pixels(lib / "masked.png").astype(float) - _pixels(lib / "plain.png"))
    assert diff.mean() > 0.5


@pytest.mark.parametrize(
    "extra",
    [["x.jpg"], ["--style", "s.jpg"], ["--content-mask", "m.png"], ["-o", "out.png"]],
)
def test_pairs_excludes_paths_style_masks_and_a_file_output(library, run, extra):
    _, manifest = library
    result = run("--pairs", manifest, *extra)
    assert result.exit_code == 2
    assert "--pairs" in result.output


def test_address_needs_the_ray_backend(library, run):
    _, manifest = library
    result = run("--pairs", manifest, "--workers", "2")
    assert result.exit_code == 2 and "--backend ray" in result.output
