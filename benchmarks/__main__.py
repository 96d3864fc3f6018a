"""``python -m benchmarks [rl] [a3c] [mnist] [cifar]``, ``python -m benchmarks book --mode full|quick`` and
``python -m benchmarks devices`` (the device matrix, ``make gpu-check``).

Without names it runs the four comparisons (the CIFAR-10 one only does something on a GPU), writes one JSON
file per comparison to ``benchmarks/results/`` and regenerates ``benchmarks/results/benchmarks.md``, which the
book's results page includes. See ``benchmarks/README.md`` for what each one measures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from . import (
    a3c_scaling,
    book_times,
    cifar_airbench,
    devices,
    mnist_loop,
    pages,
    report,
    rl_ablation,
    rl_sb3,
)


def workers_upto(n: int) -> list[int]:
    """1, 2, 4, ... up to ``n`` (and ``n`` itself if it is not a power of two)."""
    counts = [1]
    while counts[-1] * 2 <= n:
        counts.append(counts[-1] * 2)
    return counts if counts[-1] == n else [*counts, n]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="{rl,a2c-ablation,a3c,mnist,cifar,book,devices}",
        help="comparisons to run (default: rl a3c mnist cifar)",
    )
    parser.add_argument(
        "--seeds", type=int, default=5, help="RL seeds per side (default 5)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="RL runs (one CPU thread each) or notebooks (devices) at the same time",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=8,
        help="A3C: time 1, 2, 4, ... up to this many worker processes (default 8)",
    )
    parser.add_argument("--epochs", type=int, default=8, help="MNIST epochs per run")
    parser.add_argument("--repeats", type=int, default=4, help="MNIST runs per side")
    parser.add_argument(
        "--mode",
        choices=["full", "quick"],
        default="full",
        help="book: the notebooks' mode",
    )
    parser.add_argument(
        "--notebooks",
        nargs="*",
        help="book, devices: only these notebooks (e.g. cnn dqn)",
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=["quick", "full"],
        default=["quick", "full"],
        help="devices: the modes to run (full mode runs on a CPU only for --full notebooks)",
    )
    parser.add_argument(
        "--full",
        nargs="*",
        default=[],
        metavar="NOTEBOOK",
        help="devices: notebooks to run in full mode even without a GPU (the cheap ones)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="devices: run with the notebooks' SEED line set to this",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        help="devices: stop everything after this many seconds",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="devices: CPU threads per notebook (default cores/jobs)",
    )
    parser.add_argument(
        "--keep", type=Path, help="devices: save the executed notebooks in this folder"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        help="devices: a jupyter-cache folder for the passed notebooks "
        "(make book: _build/.jupyter_cache)",
    )
    parser.add_argument(
        "--results", type=Path, help="devices: where chapters record their numbers"
    )
    parser.add_argument(
        "--records",
        type=Path,
        help="devices: keep the records of passed full-mode runs here",
    )
    parser.add_argument(
        "--no-save",
        action="store_true",
        help="devices: do not write devices.json (make book)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=report.RESULTS,
        help="folder for the JSON and Markdown",
    )
    args = parser.parse_args(argv)
    names = args.names or ["rl", "a3c", "mnist", "cifar"]
    known = {"rl", "a2c-ablation", "a3c", "mnist", "cifar", "book", "devices"}
    unknown = sorted(set(names) - known)
    if unknown:
        parser.error(
            f"unknown comparison(s) {unknown}: "
            "choose from rl, a2c-ablation, a3c, mnist, cifar, book, devices"
        )

    start = time.perf_counter()
    status = 0
    for name in names:
        t = time.perf_counter()
        print(f"== {name}", flush=True)
        if name == "rl":
            report.save(
                "rl_sb3", rl_sb3.run(seeds=range(args.seeds), jobs=args.jobs), args.out
            )
        elif name == "a2c-ablation":
            report.save("rl_a2c_ablation", rl_ablation.run(jobs=args.jobs), args.out)
        elif name == "a3c":
            report.save(
                "a3c_scaling", a3c_scaling.run(workers_upto(args.workers)), args.out
            )
        elif name == "mnist":
            result = mnist_loop.run(epochs=args.epochs, repeats=args.repeats)
            report.save(mnist_loop.result_name(result), result, args.out)
        elif name == "cifar":
            report.save("cifar_airbench", cifar_airbench.run(), args.out)
        elif name == "book":
            path = args.out / "book_times.json"
            previous = json.loads(path.read_text()) if path.exists() else None
            report.save(
                "book_times",
                book_times.run(args.mode, args.notebooks, previous),
                args.out,
            )
        elif name == "devices":
            path = args.out / "devices.json"
            previous = json.loads(path.read_text()) if path.exists() else None
            if "full" in args.modes:
                _print_estimate(args, previous)
            result = devices.run(
                args.modes,
                args.notebooks,
                jobs=args.jobs,
                threads=args.threads,
                deadline_s=args.deadline,
                seed=args.seed,
                full_on_cpu=args.full,
                previous=previous,
                keep=args.keep,
                cache=args.cache,
                results=args.results,
                records=args.records,
            )
            new = result.pop("new")
            if not args.no_save:
                report.save("devices", result, args.out)
            failed = [r for r in new if not r["passed"]]
            print(
                f"{len(new) - len(failed)} of {len(new)} notebook runs passed",
                flush=True,
            )
            if failed:
                print(
                    "failed: "
                    + "; ".join(
                        f"{r['notebook']} {r['mode']} ({r['error']})" for r in failed
                    )
                )
                status = 1
        print(f"== {name} done in {time.perf_counter() - t:.0f} s", flush=True)
    md = pages.write_markdown(args.out)
    print(f"all done in {time.perf_counter() - start:.0f} s -> {md}")
    return status


def _print_estimate(args, previous) -> None:
    """Before a full-mode run: what it will cost on this machine, from the recorded timings, and the way out."""
    info = devices.device_info()
    if info["device_type"] != "cpu" or not (
        args.full and ("all" in args.full or args.notebooks)
    ):
        return
    names = args.notebooks or None
    # the timed chapters' total: the whole run's time when every chapter was timed, else a lower bound
    lines, total, untimed = devices.estimate(
        "full", names, args.jobs, previous, lower_bound=True
    )
    print(
        f"Full mode on {info['device']}: the real training budgets. Recorded wall times per chapter:"
    )
    print("\n".join(lines))
    if total is None:
        when = "unknown (no chapter was ever timed here)"
    elif not untimed:
        when = f"about {total / 3600:.1f} h"
    else:
        when = (
            f"more than {total / 3600:.1f} h (the timed chapters alone; never timed "
            f"here: {', '.join(untimed)})"
        )
    print(
        f"With {args.jobs} at a time: {when}. A GPU machine takes minutes (see the results page).\n"
        "For the website in minutes on this machine: make book-quick (quick mode: small data, few epochs).\n"
        "Progress is printed as each chapter finishes; Ctrl-C stops the run.",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
