"""The device matrix runner (make gpu-check): seeds, failures, deadlines and the table, on tiny notebooks."""

from __future__ import annotations

import json
import os

import nbformat
import pytest

from benchmarks import book_times, devices, pages, report


def notebook(path, *sources: str):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


def test_with_seed_changes_the_one_seed_line():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import x\nSEED = 0\nSEEDS = [SEED + i for i in range(3)]"
        )
    ]
    assert "SEED = 7\n" in book_times.with_seed(nb, 7).cells[0].source
    nb.cells.append(nbformat.v4.new_code_cell("SEED = 1"))
    with pytest.raises(ValueError, match="found 2"):
        book_times.with_seed(nb, 3)


def test_the_failing_assertion_is_the_reported_error():
    text = "cell\n\x1b[31mAssertionError\x1b[39m: gate 0.9 missed\n"
    assert book_times.last_error_line(text) == "AssertionError: gate 0.9 missed"


def test_run_records_passes_failures_seeds_and_the_deadline(tmp_path):
    ok = notebook(tmp_path / "ok.ipynb", "SEED = 0", "assert SEED == 5, SEED")
    bad = notebook(
        tmp_path / "bad.ipynb", "SEED = 0", "assert SEED == 0, f'seed {SEED}'"
    )
    slow = notebook(tmp_path / "slow.ipynb", "SEED = 0", "import time\ntime.sleep(60)")
    result = devices.run(
        ["quick"], jobs=2, threads=1, seed=5, deadline_s=20, paths=[ok, bad, slow]
    )
    rows = {r["notebook"]: r for r in result["runs"]}
    assert (
        rows["ok"]["passed"]
        and rows["ok"]["seed"] == 5
        and rows["ok"]["mode"] == "quick"
    )
    assert (
        not rows["bad"]["passed"] and rows["bad"]["error"] == "AssertionError: seed 5"
    )
    assert (
        not rows["slow"]["passed"]
        and "deadline" in rows["slow"]["error"]
        and rows["slow"]["stopped"]
    )
    assert rows["slow"]["wall_s"] < 40
    for key in ("device", "torch", "commit", "date"):
        assert rows["ok"][key]


def test_the_executed_notebook_keeps_its_figures(tmp_path, monkeypatch):
    # the website is rendered from these executed notebooks: a plot must be in them (not swallowed by a backend)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    plot = notebook(
        tmp_path / "plot.ipynb",
        "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()",
    )
    row = book_times.execute(
        plot, "quick", tmp_path / "results", out=tmp_path / "done.ipynb"
    )
    outputs = nbformat.read(tmp_path / "done.ipynb", as_version=4).cells[0].outputs
    assert row["passed"] and any("image/png" in o.get("data", {}) for o in outputs)
    assert os.environ["MPLBACKEND"] == "Agg"  # the caller's environment is restored


class _FlakyClient:
    """A NotebookClient whose kernel dies at start-up the first ``deaths`` times (the port race), then runs."""

    starts = 0
    deaths = 1

    def __init__(self, nb, **kwargs):
        self.nb = nb

    def execute(self):
        type(self).starts += 1
        if type(self).starts <= self.deaths:
            raise RuntimeError("Kernel died before replying to kernel_info")
        self.nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="ran\n")]


def test_a_kernel_that_dies_at_start_is_started_again(tmp_path, monkeypatch):
    import nbclient

    monkeypatch.setattr(nbclient, "NotebookClient", _FlakyClient)
    monkeypatch.setattr(_FlakyClient, "starts", 0)
    path = notebook(tmp_path / "ok.ipynb", "SEED = 0")
    row = book_times.execute(path, "quick", tmp_path / "r", out=tmp_path / "done.ipynb")
    assert row["passed"] and _FlakyClient.starts == 2
    outputs = nbformat.read(tmp_path / "done.ipynb", as_version=4).cells[0].outputs
    assert [o["text"] for o in outputs] == ["ran\n"]  # one run's outputs, not two


def test_a_kernel_that_never_starts_is_reported_not_retried_forever(
    tmp_path, monkeypatch
):
    import nbclient

    monkeypatch.setattr(nbclient, "NotebookClient", _FlakyClient)
    monkeypatch.setattr(_FlakyClient, "starts", 0)
    monkeypatch.setattr(_FlakyClient, "deaths", 99)
    row = book_times.execute(notebook(tmp_path / "x.ipynb", "1"), "quick", tmp_path)
    assert not row["passed"] and "kernel_info" in row["error"]
    assert _FlakyClient.starts == book_times.KERNEL_STARTS
    assert not book_times.died_at_start(RuntimeError("a cell raised this"))


def test_full_mode_on_a_cpu_only_for_the_named_notebooks(tmp_path, monkeypatch):
    monkeypatch.setattr(
        devices,
        "device_info",
        lambda: {
            "device": "CPU (test)",
            "device_type": "cpu",
            "torch": "x",
            "python": "3",
            "cores": 2,
        },
    )
    ok = notebook(
        tmp_path / "ok.ipynb",
        "SEED = 0",
        # a chapter's record, written where helpers.results.record puts it (without importing torch)
        "import json, os, pathlib\n"
        'out = pathlib.Path(os.environ["DLBOOK_RESULTS"]) / "full"\n'
        "out.mkdir(parents=True, exist_ok=True)\n"
        '(out / "ok.json").write_text(json.dumps({"metrics": {"acc": 0.5}}))\n'
        'print("accuracy 0.5000")',
    )
    other = notebook(tmp_path / "other.ipynb", "SEED = 0")
    records = tmp_path / "records"
    (records / "ok.out.txt").parent.mkdir()
    (records / "ok.out.txt").write_text("printed by an older run")
    result = devices.run(
        ["full"],
        jobs=1,
        threads=1,
        full_on_cpu=["ok"],
        paths=[ok, other],
        records=records,
    )
    assert [r["notebook"] for r in result["runs"]] == ["ok"] and result[
        "new"
    ] == result["runs"]
    # the passed full-mode run's record, and beside it what the run printed
    assert json.loads((records / "ok.json").read_text())["metrics"] == {"acc": 0.5}
    assert (records / "ok.out.txt").read_text() == (
        ">>> import json, os, pathlib ...\naccuracy 0.5000\n"
    )


def test_passed_notebooks_land_in_the_execution_cache_that_the_build_reads(tmp_path):
    from jupyter_cache import get_cache

    ok = notebook(tmp_path / "ok.ipynb", "SEED = 0", "print(6 * 7)")
    bad = notebook(tmp_path / "bad.ipynb", "assert False, 'no'")
    devices.run(["quick"], jobs=2, threads=1, paths=[ok, bad], cache=tmp_path / "cache")
    cache = get_cache(str(tmp_path / "cache"))
    record = cache.match_cache_notebook(
        nbformat.read(ok, as_version=4)
    )  # what myst-nb does at build time
    _, merged = cache.merge_match_into_notebook(nbformat.read(ok, as_version=4))
    assert record is not None and merged.cells[1].outputs[0]["text"].strip() == "42"
    with pytest.raises(KeyError):
        cache.match_cache_notebook(nbformat.read(bad, as_version=4))
    again = devices.run(
        ["quick"], jobs=2, threads=1, paths=[ok, bad], cache=tmp_path / "cache"
    )
    assert [r["notebook"] for r in again["new"]] == [
        "bad"
    ]  # the unchanged, cached one is not run again


def test_estimate_uses_the_recorded_times_of_this_kind_of_device(monkeypatch):
    monkeypatch.setattr(
        devices, "device_info", lambda: {"device": "CPU (here)", "device_type": "cpu"}
    )
    rows = [
        {
            "device": "CPU (other)",
            "device_type": "cpu",
            "mode": "full",
            "notebook": n,
            "wall_s": 600.0,
            "date": "2026-11-27",
            "seed": 0,
        }
        for n in ("mlp", "cnn")
    ]
    lines, total, untimed = devices.estimate(
        "full", ["mlp", "cnn"], jobs=2, recorded={"runs": rows}
    )
    assert total == 600.0 and "10.0 min" in lines[0] and untimed == []
    lines, total, untimed = devices.estimate(
        "full", ["mlp", "gan"], jobs=1, recorded={"runs": rows}
    )
    assert total is None and "not yet timed" in lines[1] and untimed == ["gan"]
    # at least the timed chapters' time: what make book prints when some were never timed
    _, at_least, _ = devices.estimate(
        "full", ["mlp", "gan"], jobs=1, recorded={"runs": rows}, lower_bound=True
    )
    assert at_least == 600.0


def test_make_book_on_a_cpu_prints_a_lower_bound_and_names_the_untimed(
    monkeypatch, capsys
):
    import argparse

    from benchmarks.__main__ import _print_estimate

    monkeypatch.setattr(
        devices, "device_info", lambda: {"device": "CPU (here)", "device_type": "cpu"}
    )
    row = {"device": "CPU (here)", "device_type": "cpu", "mode": "full"}
    rows = [
        {**row, "notebook": n, "wall_s": 5400.0, "date": "2026-11-27", "seed": 0}
        for n in ("mlp", "cnn")
    ]
    args = argparse.Namespace(full=["all"], notebooks=["mlp", "cnn", "gan"], jobs=1)
    _print_estimate(args, {"runs": rows})
    out = capsys.readouterr().out
    assert "gan          not yet timed on a CPU" in out
    assert "more than 3.0 h (the timed chapters alone; never timed here: gan)" in out
    assert "make book-quick" in out


def test_matrix_markdown_keeps_devices_apart_and_lists_failures(tmp_path):
    base = {
        "torch": "2.x",
        "commit": "abc",
        "date": "2026-11-27",
        "jobs": 2,
        "threads": 1,
        "seed": 0,
    }
    runs = [
        {
            **base,
            "device": "NVIDIA H100",
            "mode": "quick",
            "notebook": "mlp",
            "wall_s": 9.0,
            "passed": True,
            "error": None,
        },
        {
            **base,
            "device": "CPU (x, 2 cores)",
            "mode": "quick",
            "notebook": "mlp",
            "wall_s": 12.0,
            "passed": False,
            "error": "AssertionError: gate",
        },
        {
            **base,
            "seed": 3,
            "device": "CPU (x, 2 cores)",
            "mode": "quick",
            "notebook": "gru",
            "wall_s": 30.0,
            "passed": True,
            "error": None,
        },
    ]
    text = "\n".join(devices.markdown({"runs": runs}))
    assert "| notebook | CPU (x, 2 cores), quick | NVIDIA H100, quick |" in text
    assert "| mlp | ✗ 12 s ¹ | ✓ 9 s |" in text
    assert "mlp (CPU (x, 2 cores), quick): `AssertionError: gate`" in text
    assert "SEED = 3" in text and "| gru | ✓ 30 s |" in text
    # and when and where the other seeds ran: a seed's table collects several sittings
    assert (
        "Runs: SEED = 3: 2026-11-27, commit abc, torch 2.x, 2 notebooks at a time."
        in text
    )
    # a run stopped at the deadline is no failed gate: it shows as unfinished, with its notes
    stopped = {
        **base,
        "device": "NVIDIA H100",
        "mode": "full",
        "notebook": "gan",
        "wall_s": 450.2,
        "passed": False,
        "stopped": True,
        "error": "stopped at the deadline (450 s)",
    }
    text = "\n".join(
        devices.markdown(
            {"runs": runs + [stopped], "notes": ["ran beside the quick runs"]}
        )
    )
    assert (
        "| gan | — | — | unfinished > 450 s ² |" in text
        and "² Stopped unfinished" in text
    )
    assert (
        "gan (NVIDIA H100, full): `stopped" not in text
        and "- ran beside the quick runs" in text
    )
    report.save("devices", {"runs": runs}, tmp_path)
    pages.write_markdown(tmp_path)
    assert "make gpu-check" in (tmp_path / "devices.md").read_text()


def test_matrix_markdown_names_every_sitting_of_a_column():
    """A column collects runs of several days and commits: the description lists them all,
    oldest first, not only the latest run's."""
    base = {"torch": "2.x", "threads": 1, "seed": 0, "passed": True, "error": None}
    runs = [
        {**base, "device": "CPU", "mode": "full", "notebook": n, "wall_s": 60.0}
        | {"date": d, "commit": c, "jobs": j}
        for n, d, c, j in (
            ("mlp", "2026-11-28", "bbb", 2),
            ("cnn", "2026-11-27", "aaa", 1),
            ("gru", "2026-11-28", "bbb", 2),
        )
    ]
    text = "\n".join(devices.markdown({"runs": runs}))
    assert (
        "CPU, full mode: 2026-11-27 to 2026-11-28, commits aaa, bbb, torch 2.x, "
        "1 to 2 notebooks at a time" in text
    )
    one = "\n".join(devices.markdown({"runs": runs[1:2]}))
    assert (
        "CPU, full mode: 2026-11-27, commit aaa, torch 2.x, one notebook at a time"
        in one
    )
