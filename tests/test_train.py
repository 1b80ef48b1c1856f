import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from stylenas_cli.decoder import Decoder
from stylenas_cli.errors import StylenasError
from stylenas_cli.genotype import NAMED
from stylenas_cli.train import (
    TrainConfig,
    export_weights,
    list_images,
    lr_factor,
    psnr,
    read_checkpoint,
    split_holdout,
    train,
    warm_start,
)
from stylenas_cli.weights import load_decoder_state


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        Image.fromarray(getattr(data, name)()).resize((96, 72)).save(d / f"{name}.jpg")
    (d / "notes.txt").write_text("not a photo")
    return d


def _cfg(photo_dir, out, **kw):
    base = dict(
        data=str(photo_dir),
        arch="photonas",
        out=str(out),
        steps=6,
        batch=2,
        size=48,
        levels=("relu1_1", "relu2_1"),
        precision="fp32",
        device="cpu",
        checkpoint_every=3,
        val_every=3,
        val_size=48,
        warmup=2,
    )
    return TrainConfig(**(base | kw))


def test_listing_and_holdout(photo_dir):
    files = list_images(photo_dir)
    assert [f.suffix for f in files] == [".jpg"] * 4
    train_files, val = split_holdout(files)
    assert val and not set(val) & set(train_files)
    with pytest.raises(StylenasError):
        list_images(photo_dir / "nope")


def test_psnr_and_schedule():
    a = torch.rand(2, 3, 8, 8)
    assert psnr(a, a) > 90
    assert abs(psnr(torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.1)) - 20.0) < 1e-4
    cfg = TrainConfig(data=".", steps=100, warmup=10, min_lr_ratio=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(100, cfg) == pytest.approx(0.1)


def test_training_lowers_the_loss_and_resumes(photo_dir, tmp_path):
    torch.manual_seed(0)
    logs = []
    steps = []
    ckpt = train(
        _cfg(photo_dir, tmp_path, steps=12, lr=3e-3),
        log=logs.append,
        on_step=lambda s, info: steps.append(info["loss"]),
    )
    assert ckpt.exists() and len(steps) == 12
    assert np.mean(steps[-3:]) < np.mean(steps[:3])
    ck = torch.load(ckpt, weights_only=False)
    assert ck["step"] == 12 and ck["history"][-1]["val_psnr"] > 0
    # Resume continues the step count; without --resume the run refuses to clobber it.
    with pytest.raises(StylenasError):
        train(_cfg(photo_dir, tmp_path, steps=14), log=logs.append)
    train(_cfg(photo_dir, tmp_path, steps=14), resume=True, log=logs.append)
    assert torch.load(ckpt, weights_only=False)["step"] == 14
    assert any("resumed" in m for m in logs)


def test_ctrl_c_saves_a_checkpoint(photo_dir, tmp_path):
    def interrupt(step, info):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_cfg(photo_dir, tmp_path, checkpoint_every=100), on_step=interrupt, log=lambda m: 0)
    assert torch.load(tmp_path / "last.pt", weights_only=False)["step"] == 2


def test_export_is_fp16_and_loads(photo_dir, tmp_path):
    ckpt = train(_cfg(photo_dir, tmp_path, steps=2), log=lambda m: 0)
    dest = export_weights(ckpt, tmp_path / "w.pt")
    state = torch.load(dest, weights_only=False)["state_dict"]
    assert all(v.dtype == torch.float16 for v in state.values())
    loaded = load_decoder_state(dest, NAMED["photonas"])
    Decoder(NAMED["photonas"]).load_state_dict(loaded)


def test_warm_start_copies_matching_layers(tmp_path):
    src = Decoder(NAMED["photonet"])
    torch.save({"state_dict": src.state_dict()}, tmp_path / "net.pt")
    dst = Decoder(NAMED["photonas"])
    copied = warm_start(dst, tmp_path / "net.pt")
    assert copied > 0
    assert torch.equal(dst.convs["d5_fuse"][0].weight, src.convs["d5_fuse"][0].weight)


def test_wrong_genotype_on_resume(photo_dir, tmp_path):
    train(_cfg(photo_dir, tmp_path, steps=1), log=lambda m: 0)
    with pytest.raises(ValueError, match="genotype"):
        train(_cfg(photo_dir, tmp_path, arch="photonet", steps=2), resume=True, log=lambda m: 0)


def test_native_crops_keep_the_photo_pixels(tmp_path):
    """crop="native" takes pixels as they are (up to a flip); a smaller photo is padded."""
    from stylenas_cli.train import PhotoSampler

    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(big).save(tmp_path / "big.png")
    sampler = PhotoSampler([tmp_path / "big.png"], 16, seed=0, crop="native")
    src = torch.from_numpy(big).permute(2, 0, 1).float() / 255.0
    for crop in sampler.batch(6):
        assert crop.shape == (3, 16, 16)
        found = any(
            torch.equal(c, src[:, i : i + 16, j : j + 16])
            for c in (crop, crop.flip(-1))
            for i in range(40 - 15)
            for j in range(50 - 15)
        )
        assert found, "a native crop must be an exact block of the photo"
    small = PhotoSampler([tmp_path / "big.png"], 64, seed=0, crop="native").batch(2)
    assert small.shape == (2, 3, 64, 64)
    resized = PhotoSampler([tmp_path / "big.png"], 16, seed=0).batch(2)
    assert resized.shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="crop"):
        PhotoSampler([tmp_path / "big.png"], 16, seed=0, crop="zoom")


def test_gamma_augmentation_darkens_and_brightens(tmp_path):
    from stylenas_cli.train import PhotoSampler

    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(tmp_path / "p.png")
    torch.manual_seed(0)  # the flips draw from torch's generator
    plain = PhotoSampler([tmp_path / "p.png"], 24, seed=0, crop="native").batch(3)
    squared = PhotoSampler([tmp_path / "p.png"], 24, seed=0, crop="native", gamma=(2, 2))
    torch.manual_seed(0)
    # Same seeds, same crops and flips: only the tone differs, by exactly the power.
    torch.testing.assert_close(squared.batch(3), plain**2)
    spread = PhotoSampler([tmp_path / "p.png"], 24, seed=0, crop="native", gamma=(0.5, 2.0))
    means = spread.batch(64).mean((1, 2, 3))
    assert means.min() < plain.mean() - 0.05 and means.max() > plain.mean() + 0.05
    with pytest.raises(ValueError, match="gamma"):
        PhotoSampler([tmp_path / "p.png"], 24, seed=0, gamma=(2.0, 1.0))


@pytest.mark.parametrize("value", ["2", "a,b", "0,1", "2,1"])
def test_train_cli_rejects_bad_gamma(photo_dir, tmp_path, value):
    from click.testing import CliRunner

    from stylenas_cli.cli import main

    res = CliRunner().invoke(main, ["train", str(photo_dir), "-o", str(tmp_path), "--gamma", value])
    assert res.exit_code == 2 and "--gamma" in res.output
    assert not (tmp_path / "last.pt").exists()


def test_sigterm_checkpoints_and_exits_130(photo_dir, tmp_path):
    """A scheduler's SIGTERM must not lose the run: checkpoint, exit 130, resumable."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "stylenas_cli", "train", str(photo_dir), "-o", str(out)]
    cmd += ["--steps", "100000", "--batch", "1", "--size", "32", "--levels", ""]
    cmd += ["--checkpoint-every", "100000", "--val-every", "100000", "--precision", "fp32"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not out.is_dir() and time.time() < deadline:  # created once training starts
            time.sleep(0.2)
        time.sleep(2.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err.decode()
    assert "--resume" in err.decode()
    ck = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    assert ck["step"] > 0


def _recipe_setup(tmp_path, side: int):
    """Four square photos of ``side`` px, and the recipe script's path."""
    from pathlib import Path

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        Image.fromarray(getattr(data, name)()).resize((side, side)).save(photos / f"{name}.jpg")
    return photos, Path(__file__).resolve().parents[1] / "scripts" / "train_recipe.py"


def test_the_recipe_chains_five_phases_each_from_the_last_and_resumes(tmp_path):
    import subprocess
    import sys

    photos, script = _recipe_setup(tmp_path, 400)  # phase 4 crops 384 px
    out = tmp_path / "run"
    cmd = [sys.executable, str(script), "--arch", "photonas", "-o", str(out)]
    cmd += ["--data", str(photos), "--scale", "0.001"]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    steps = [3, 1, 0, 1, 1]  # 2600, 900, 450, 1100, 700 steps x 0.001, at least 1
    previous = None
    for k, want in enumerate(steps, start=1):
        ck = torch.load(out / f"p{k}" / "last.pt", weights_only=False)
        assert ck["step"] == max(1, want) and ck["genotype"] == str(NAMED["photonas"])
        assert ck["config"]["init"] == (None if previous is None else str(previous))
        previous = out / f"p{k}" / "last.pt"
    assert torch.load(out / "p5" / "last.pt", weights_only=False)["config"]["crop"] == "native"
    state = load_decoder_state(out / "weights.pt", NAMED["photonas"])
    last = torch.load(previous, weights_only=False)["state_dict"]
    assert all(torch.equal(state[k], last[k].half().float()) for k in state)
    again = subprocess.run(cmd, capture_output=True, text=True, env=env)  # all done: no step
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("$ stylenas train") == 5
    for k, want in enumerate(steps, start=1):
        assert torch.load(out / f"p{k}" / "last.pt", weights_only=False)["step"] == max(1, want)
    resumed = load_decoder_state(out / "weights.pt", NAMED["photonas"])
    assert all(torch.equal(resumed[k], state[k]) for k in state)


def test_one_training_per_output_folder(photo_dir, tmp_path):
    from click.testing import CliRunner

    from stylenas_cli.cli import main
    from stylenas_cli.files import exclusive_dir

    out = tmp_path / "run"
    with exclusive_dir(out, "training"):  # another process's training, as far as flock sees
        with pytest.raises(StylenasError, match="in use by another stylenas training"):
            train(_cfg(photo_dir, out))
        res = CliRunner().invoke(main, ["train", str(photo_dir), "-o", str(out), "--steps", "2"])
        last = res.output.strip().splitlines()[-1]
        assert res.exit_code == 1 and last.startswith(f"error: {out} is in use by another")
        assert not (out / "last.pt").exists()
    train(_cfg(photo_dir, out, steps=3))  # released: the folder is free again
    assert read_checkpoint(out / "last.pt")["step"] == 3


def test_a_terminated_recipe_stops_its_training_too(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from stylenas_cli.files import OutputError, exclusive_dir

    photos, script = _recipe_setup(tmp_path, 160)
    out = tmp_path / "run"
    cmd = [sys.executable, str(script), "--arch", "photonas", "-o", str(out), "--data", str(photos)]
    recipe = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    lock = out / "p1" / ".lock"
    deadline = time.monotonic() + 120
    while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.2)  # until phase 1's training holds its folder
    assert lock.read_text().strip().isdigit(), "phase 1 never started"
    recipe.send_signal(signal.SIGTERM)
    code = recipe.wait(timeout=120)
    try:
        with exclusive_dir(out / "p1", "training"):  # nobody left writing into it
            pass
    except OutputError:
        os.kill(int(lock.read_text()), signal.SIGKILL)  # the orphan, not to slow the suite
        raise
    assert code == 130  # the training's own exit code: it saved its checkpoint
    assert not (out / "p2").exists()
