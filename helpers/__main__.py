"""Command line of the helpers package.

``python -m helpers results OUT.md [MODE]``: collect the chapters' recorded results of MODE (default: the current
mode) into the results page's Markdown tables and comparison plots, written to OUT.md and beside it.
"""

from __future__ import annotations

import sys

from .results import main


def cli(argv: list[str]) -> int:
    if not argv or argv[0] != "results":
        print(__doc__)
        return 2
    return main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(cli(sys.argv[1:]))
