"""How many distinct networks the supernet search can propose under a cost cap (minutes).

    python scripts/space_size.py --max-gflops photonas

Counts canonical names (``nas.proxy.search_genotype``: equivalent genotypes are one network)
over the proxy's space: every layout of the bits that cost FLOPs within the cap, then every
setting of the free bits (transfers and instance norms) under each layout.
"""

from __future__ import annotations

import argparse
import itertools

from stylenas_cli.genotype import N_BITS, Genotype
from stylenas_cli.nas.objectives import GflopsCap, gflops
from stylenas_cli.nas.proxy import PROXY_SPACE, search_genotype


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-gflops", required=True, help="a cap, as `stylenas search`'s")
    args = ap.parse_args()
    cap = GflopsCap.of(args.max_gflops)
    empty = Genotype("0" * N_BITS)
    costly = [i for i in PROXY_SPACE if gflops(empty.flip(i)) > gflops(empty)]
    free = [i for i in PROXY_SPACE if i not in costly]
    layouts = names = 0
    for on in itertools.product("01", repeat=len(costly)):
        bits = ["0"] * N_BITS
        for i, b in zip(costly, on):
            bits[i] = b
        layout = Genotype("".join(bits))
        if not cap(layout):
            continue
        layouts += 1
        seen = set()
        for setting in itertools.product("01", repeat=len(free)):
            for i, b in zip(free, setting):
                bits[i] = b
            seen.add(search_genotype(Genotype("".join(bits))))
        names += len(seen)
    print(f"{layouts} layouts of the {len(costly)} bits that cost FLOPs, {names} distinct networks")


if __name__ == "__main__":
    main()
