"""stylenas: ultrafast photorealistic style transfer (StyleNAS / PhotoNAS).

The library never imports click; the CLI lives in :mod:`stylenas_cli.cli`.
"""

from .genotype import NAMED, Genotype
from .model import StyleCache, Stylizer

__version__ = "0.1.0"
__all__ = ["Genotype", "NAMED", "StyleCache", "Stylizer", "__version__"]
