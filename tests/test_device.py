"""Device and precision selection (device.py)."""

import pytest
import torch

from stylenas_cli import device
from stylenas_cli.errors import StylenasError


def test_auto_precision_follows_the_hardware(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    assert device.resolve_precision("auto", cpu) == "bf16"
    assert device.resolve_precision("auto", cpu, training=True) == "fp32"
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    assert device.resolve_precision("auto", cpu) == "fp32"
    assert device.resolve_precision("auto", cuda) in ("bf16", "fp16")
    assert device.resolve_precision("fp16", cuda) == "fp16"
    with pytest.raises(StylenasError, match="precision"):
        device.resolve_precision("fp8", cpu)


def test_fp16_on_a_cpu_runs_what_the_cpu_runs_well_and_says_so(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    assert device.resolve_precision("fp16", cpu) == "bf16"
    assert "running bf16" in device.precision_note("fp16", cpu)
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    assert device.resolve_precision("fp16", cpu) == "fp32"
    assert "running fp32" in device.precision_note("fp16", cpu)
    assert device.precision_note("fp32", cpu) is None
    assert device.precision_note("fp16", torch.device("cuda")) is None


def test_the_stylizer_resolves_auto_for_its_device(monkeypatch):
    from stylenas_cli.model import Stylizer

    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    st = Stylizer("photonas", precision="auto")
    assert st.precision == "fp32"
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    assert st.precision == "bf16"
    with pytest.raises(StylenasError, match="precision"):
        st.precision = "fp8"


def test_unknown_devices_are_one_line_errors():
    with pytest.raises(StylenasError, match="unknown device"):
        device.resolve_device("tpu:0")
    if not torch.cuda.is_available():
        with pytest.raises(StylenasError, match="CUDA is not available"):
            device.resolve_device("cuda")
