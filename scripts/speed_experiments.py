"""The encoder's fast paths, measured side by side (issue 14): torch fp32 / channels-last /
bf16 autocast, ``torch.compile``, and ONNX Runtime (if installed: ``pip install onnx
onnxruntime``). Prints one table of warm median seconds per image size.

    python scripts/speed_experiments.py --sizes 384,1024
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from stylenas_cli.encoder import VGGEncoder


def timed(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (and compilation)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="384,1024")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--only-onnx", action="store_true", help="skip the torch experiments")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    enc = VGGEncoder().eval()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: dict[str, dict[int, float | str]] = {}

    def run(name: str, make: Callable[[torch.Tensor], Callable[[], object]]) -> None:
        for size in sizes:
            x = torch.rand(1, 3, size, size)
            try:
                rows.setdefault(name, {})[size] = timed(make(x), args.repeats)
            except Exception as err:  # an experiment that does not run is a result too
                rows.setdefault(name, {})[size] = f"failed: {type(err).__name__}"
            print(name, size, rows[name][size], flush=True)

    def plain(x, cl=False, dtype=None):
        model = enc.to(memory_format=torch.channels_last) if cl else enc
        xx = x.to(memory_format=torch.channels_last) if cl else x

        def go():
            with (
                torch.inference_mode(),
                torch.autocast("cpu", dtype or torch.float32, enabled=bool(dtype)),
            ):
                return model(xx)

        return go

    if args.only_onnx:
        return onnx_runs(enc, run, args, rows, sizes)
    run("torch fp32", lambda x: plain(x))
    run("torch fp32 channels-last", lambda x: plain(x, cl=True))
    run("torch bf16", lambda x: plain(x, dtype=torch.bfloat16))
    run("torch bf16 channels-last", lambda x: plain(x, cl=True, dtype=torch.bfloat16))
    enc.to(memory_format=torch.contiguous_format)

    compiled = torch.compile(VGGEncoder().eval(), dynamic=False)

    def comp(x, dtype=None):
        def go():
            with (
                torch.inference_mode(),
                torch.autocast("cpu", dtype or torch.float32, enabled=bool(dtype)),
            ):
                return compiled(x)

        return go

    t0 = time.perf_counter()
    run("torch.compile fp32", lambda x: comp(x))
    run("torch.compile bf16", lambda x: comp(x, torch.bfloat16))
    print(f"compile + runs: {time.perf_counter() - t0:.1f} s", flush=True)
    onnx_runs(enc, run, args, rows, sizes)


def onnx_runs(enc, run, args, rows, sizes) -> None:
    """The encoder exported to ONNX and run by ONNX Runtime (if installed), then the table."""
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime not installed: skipped")
    else:
        path = Path(tempfile.mkdtemp()) / "vgg.onnx"

        class Wrapped(torch.nn.Module):
            def forward(self, x):
                return tuple(enc(x).values())

        torch.onnx.export(
            Wrapped(),
            torch.rand(1, 3, 64, 64),
            path,
            input_names=["x"],
            dynamic_axes={"x": {2: "h", 3: "w"}},
        )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        run("onnxruntime fp32", lambda x: lambda: sess.run(None, {"x": x.numpy()}))

    print("\n| encoder to relu5_1 | " + " | ".join(f"{s}² s" for s in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name, per in rows.items():
        cells = [f"{v:.3f}" if isinstance(v, float) else v for v in (per[s] for s in sizes)]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
