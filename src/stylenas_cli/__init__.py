"""stylenas: ultrafast photorealistic style transfer (StyleNAS / PhotoNAS).

The public API is loaded on first use (PEP 562), so that ``import stylenas_cli`` — and the
command line's ``--help`` — do not pay for importing torch. The library never imports
click; the CLI lives in :mod:`stylenas_cli.cli`.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "Genotype": "genotype",
    "NAMED": "genotype",
    "StyleCache": "style",
    "TransferSettings": "config",
    "Stylizer": "model",
    "StylenasError": "errors",
    "LiftConfig": "config",
    "stylize": "api",
    "apply_lut": "api",
    "Lut3D": "lut",
    "read_lut": "lut",
    "write_lut": "lut",
}
__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
