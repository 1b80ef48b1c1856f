"""What pip installs: a wheel built from the repository carries the shipped weights, and the
package installed from it, outside the repository, stylises a photo with them."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import write_photo
from stylenas_cli.weights import REGISTRY

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-build-isolation", "--no-deps",
         "-q", "-w", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    [found] = out.glob("stylenas_cli-*.whl")
    return found


def test_the_wheel_holds_the_shipped_weights_and_stays_small(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for entry in REGISTRY.values():
        assert f"stylenas_cli/shipped_weights/{entry.file}" in names
    assert "stylenas_cli/shipped_weights/supernet.pt" not in names  # the search's, not shipped
    assert wheel.stat().st_size < 100 * 2**20


def test_the_installed_wheel_stylises_a_photo_from_elsewhere(wheel, tmp_path):
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    work = tmp_path / "elsewhere"
    content = write_photo(work / "a.jpg")
    write_photo(work / "b.jpg", source="coffee")
    env = {k: v for k, v in os.environ.items() if k != "STYLENAS_WEIGHTS_DIR"}
    env["PYTHONPATH"] = str(target)
    code = (
        "import stylenas_cli, sys; from stylenas_cli.cli import main; "
        "print(stylenas_cli.__file__, file=sys.stderr); "
        "main(['stylize', 'a.jpg', 'b.jpg', '-o', 'out.png'], prog_name='stylenas')"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert str(target) in done.stderr.splitlines()[0]  # the installed copy, not the repository
    out = np.asarray(Image.open(work / "out.png"), np.float32)
    assert out.shape == np.asarray(Image.open(content)).shape
    assert np.abs(out - np.asarray(Image.open(content), np.float32)).mean() > 1
    version = subprocess.run([sys.executable, "-m", "stylenas_cli", "--version"], cwd=work,
                             env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert version.returncode == 0 and REGISTRY["photonas"].sha256[:12] in version.stdout
