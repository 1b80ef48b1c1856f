"""Contact sheet (content | style | photonas | photonas as a 33³ LUT | photonet) from
scikit-image's sample photos, each made as ``stylenas stylize`` and ``stylenas lut`` make it.

Usage: python scripts/contact_sheet.py docs/contact_sheet.jpg
Uses only photos that ship with scikit-image (freely licensed), never ../shared/data.
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from skimage import data

from stylenas_cli import Stylizer
from stylenas_cli.images import LoadedImage, atomic_write
from stylenas_cli.look import fit_look
from stylenas_cli.model import pil_to_tensor

PAIRS = [
    ("chelsea", "coffee"),
    ("astronaut", "rocket"),
    ("coffee", "chelsea"),
    ("rocket", "astronaut"),
]
ARCHS = ("photonas", "photonet")
CELL = 256


def photo(name: str) -> Image.Image:
    img = Image.fromarray(getattr(data, name)()).convert("RGB")
    img.thumbnail((CELL * 2, CELL * 2))
    return img


def fit(img: Image.Image) -> Image.Image:
    cell = Image.new("RGB", (CELL, CELL), "white")
    img = img.copy()
    img.thumbnail((CELL, CELL))
    cell.paste(img, ((CELL - img.width) // 2, (CELL - img.height) // 2))
    return cell


def main(dest: Path) -> None:
    models = {a: Stylizer.from_pretrained(a) for a in ARCHS}
    header = 24
    cols = ["content", "style", "photonas", "photonas as a LUT", "photonet"]
    sheet = Image.new("RGB", (CELL * len(cols), header + CELL * len(PAIRS)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, title in enumerate(cols):
        draw.text((i * CELL + 8, 6), title, fill="black")
    for row, (c, s) in enumerate(PAIRS):
        content, style = photo(c), photo(s)
        cells = [content, style]
        for arch, model in models.items():
            cells.append(model.stylize_pil(content, style))
            if arch == "photonas":
                summary = model.style_cache(pil_to_tensor(style))
                look = fit_look(model, [LoadedImage(np.asarray(content))], summary)
                cells.append(Image.fromarray(look.lut.apply(np.asarray(content))))
        for col, img in enumerate(cells):
            sheet.paste(fit(img), (col * CELL, header + row * CELL))
    atomic_write(dest, lambda tmp: sheet.save(tmp, format="JPEG", quality=90))
    print(dest)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/contact_sheet.jpg"))
