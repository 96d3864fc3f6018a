"""Command line of the helpers package.

``python -m helpers results OUT.md [MODE]``: collect the chapters' recorded results of MODE (default: the current
mode) into the results page's Markdown tables and comparison plots, written to OUT.md and beside it.

``python -m helpers student OUT_DIR``: the student edition, every notebook without its solutions
(:mod:`helpers.student`).

``python -m helpers grade SUBMISSIONS [--out grades.csv]``: grade the auto-checked exercises of the students'
notebooks in batch, with partial credit and feedback, into a CSV (:mod:`helpers.grading`).

``python -m helpers course starters OUT_DIR`` and ``python -m helpers course lab-times``:
the course kit's starter notebooks of the four assignments, and the lab time of every
week (:mod:`helpers.course`).
"""

from __future__ import annotations

import sys


def cli(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    if command == "results":
        from .results import main
    elif command == "student":
        from .student import main
    elif command == "grade":
        from .grading import main
    elif command == "course":
        from .course import main
    else:
        print(__doc__)
        return 2
    return main(rest)


if __name__ == "__main__":
    raise SystemExit(cli(sys.argv[1:]))
