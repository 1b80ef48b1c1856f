"""``stylenas stylize --backend ray``: a local Ray with two actors writes the same files, pixel
for pixel, as the local backend on real photos; resumes with --skip-existing; reports
failures as a retry manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from stylenas_cli.cli import main

pytest.importorskip("ray.data")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = pytest.mark.skipif(
    not (SHARED / "train").is_dir(), reason="needs ../shared/data (real photos)"
)


def _run(*args) -> object:
    return CliRunner().invoke(main, ["stylize", *map(str, args)])


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_ray_outputs_equal_local_ones_and_resume(tmp_path, monkeypatch, one_thread):
    # Ray's actors run one thread each: the local run too, in fp32, so that the pixels are
    # bit for bit the same (bf16 and a different thread count round differently).
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    photos = sorted((SHARED / "train").glob("*.jpg"))[:5]
    styles = sorted((SHARED / "bench" / "stylenas" / "style").glob("*.jpg"))[:2]
    rows = [{"content": str(p), "style": str(styles[i % 2])} for i, p in enumerate(photos)]
    rows.append({"content": str(tmp_path / "gone.jpg"), "style": str(styles[0])})
    manifest = tmp_path / "pairs.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))

    local = _run("--pairs", manifest, "-o", tmp_path / "local", "--json", "--precision", "fp32")
    assert local.exit_code == 1  # the missing content
    remote = _run("--pairs", manifest, "-o", tmp_path / "ray", "--json", "--backend", "ray",
                  "--workers", "2", "--precision", "fp32")  # fmt: skip
    assert remote.exit_code == 1, remote.output
    records = [json.loads(x) for x in remote.stdout.splitlines()]
    assert records[-1] == {"summary": {"written": 5, "skipped": 0, "failed": 1}}
    assert {r["style"] for r in records[:-1]} == {str(s) for s in styles}
    names = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert len(names) == 5
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == names + [
        "stylenas-failures.jsonl"
    ]
    for name in names:
        assert np.array_equal(_pixels(tmp_path / "ray" / name), _pixels(tmp_path / "local" / name))
    # The failure report names the missing content and is a manifest to retry it.
    [failed] = [json.loads(x) for x in (tmp_path / "ray" / "stylenas-failures.jsonl").open()]
    assert Path(failed["content"]).name == "gone.jpg" and failed["error"]
    # A re-run skips every written output and, with the failing row gone, exits 0.
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows[:-1]))
    again = _run("--pairs", manifest, "-o", tmp_path / "ray", "--json", "--backend", "ray",
                 "--skip-existing")  # fmt: skip
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout.splitlines()[-1])["summary"] == {
        "written": 0,
        "skipped": 5,
        "failed": 0,
    }
