"""The benchmarks' plumbing on tiny budgets: both sides run, the summaries and the Markdown come out right.

The real measurements are ``make bench`` (minutes); these tests only check that the code measuring them works.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import (
    a3c_scaling,
    book_times,
    cifar_airbench,
    mnist_loop,
    pages,
    report,
    rl_sb3,
)
from helpers import DataNotFoundError


def test_rl_both_sides_run_and_summarise(tmp_path):
    result = rl_sb3.run(
        seeds=[0],
        algos=("DQN", "PPO", "A2C"),
        jobs=1,
        budget_scale=0.02,
        progress=False,
    )
    assert {(r["algo"], r["impl"]) for r in result["runs"]} == {
        (a, i) for a in ("DQN", "PPO", "A2C") for i in ("ours", "sb3")
    }
    for r in result["runs"]:
        assert r["steps_done"] >= r["budget"] or r["steps_to_target"] is not None, r
        assert r["eval_steps"], f"{r['algo']} {r['impl']}: no gate evaluation happened"
        assert r["s_per_10k_steps"] > 0 and 0 <= r["final_return"] <= 500
    for s in result["summary"].values():
        assert s["steps_ratio"] > 0 and s["time_ratio"] > 0
        assert isinstance(s["goal_steps_met"], bool) and isinstance(
            s["goal_speed_met"], bool
        )
    path = report.save("rl_sb3", result, tmp_path)
    text = pages.write_markdown(tmp_path).read_text()
    assert json.loads(path.read_text())["machine"]["cores"] >= 1
    assert (
        "Stable-Baselines3" in text
        and "| DQN (ours) |" in text
        and "| A2C (SB3) |" in text
    )


def test_summary_counts_a_run_that_never_reached_the_gate_as_the_budget():
    runs = [
        {
            "algo": "DQN",
            "impl": "ours",
            "budget": 100,
            "steps_to_target": None,
            "final_return": 9.0,
            "s_per_10k_steps": 1.0,
        },
        {
            "algo": "DQN",
            "impl": "sb3",
            "budget": 100,
            "steps_to_target": 50,
            "final_return": 500.0,
            "s_per_10k_steps": 2.0,
        },
    ]
    s = rl_sb3.summarise(runs)["DQN"]
    assert s["ours"]["reached"] == 0 and s["steps_ratio"] == pytest.approx(2.0)
    assert (
        not s["goal_steps_met"]
        and s["goal_speed_met"]
        and s["time_ratio"] == pytest.approx(0.5)
    )


def test_sb3_gets_the_zoo_schedules_as_functions():
    kwargs = rl_sb3._sb3_kwargs("PPO")
    assert kwargs["learning_rate"](1.0) == pytest.approx(1e-3) and kwargs[
        "learning_rate"
    ](0.5) == pytest.approx(5e-4)
    assert (
        kwargs["clip_range"](0.25) == pytest.approx(0.05) and kwargs["n_epochs"] == 20
    )


def test_mnist_loops_compute_the_same_numbers(tmp_path):
    try:
        result = mnist_loop.run(epochs=1, repeats=1, n_train=512)
    except DataNotFoundError as err:
        pytest.skip(f"no MNIST here: {err}")
    assert result["same_accuracies"], (
        "helpers.fit and the plain loop should train identically"
    )
    assert 0.2 < result["ratio_epoch"] < 5
    report.save("mnist_loop", result, tmp_path)
    assert "plain PyTorch loop" in pages.write_markdown(tmp_path).read_text()


def test_time_to_target_sums_training_time_until_reached():
    seconds, accs = [2.0, 3.0, 4.0], [0.9, 0.99, 1.0]
    assert (
        report.time_to_target(seconds, accs, 0.99) == 5.0
        and report.time_to_target(seconds, accs, 1.01) is None
    )


def test_cifar_comparison_skips_cleanly_without_a_gpu(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the comparison would really run")
    result = cifar_airbench.run()
    assert "skipped" in result and "GPU" in result["skipped"]
    report.save("cifar_airbench", result, tmp_path)
    assert "Skipped on" in pages.write_markdown(tmp_path).read_text()


def test_book_times_knows_every_notebook_and_renders_partial_runs():
    names = [p.stem for p in book_times.notebooks_in_toc()]
    assert len(names) == len(set(names)) >= 16 and "mlp" in names and "a3c" in names
    fake = {
        "order": names,
        "modes": {
            "quick": {
                "mlp": {"wall_s": 30.0, "passed": True, "machine": "m1"},
                "cnn": {"wall_s": 12.0, "passed": False, "machine": "m1"},
            }
        },
    }
    text = "\n".join(book_times.markdown(fake))
    assert "| mlp | 30 |" in text and "12 (failed)" in text and "**42**" in text
    with pytest.raises(ValueError):
        book_times.run("fast")


def test_markdown_page_without_results_says_how_to_make_them(tmp_path):
    assert "make bench" in pages.write_markdown(tmp_path).read_text()


def test_cifar_trains_the_ablation_rows_and_reads_times_to_the_target(
    fake_data_dir, monkeypatch
):
    """The GPU comparison trains ``helpers.fast_cifar``'s rows on all the training images:
    checked here on a CPU with two tiny rows and the 20-image stand-in data set."""
    import dataclasses

    from helpers import fast_cifar

    monkeypatch.setenv("DLBOOK_DATA", str(fake_data_dir))
    tiny = dataclasses.replace(
        fast_cifar.FINAL, widths=(4, 8, 8), epochs=2, batch_size=10, tta=0
    )
    rows = [tiny, dataclasses.replace(tiny, added="TTA", tta=2)]
    monkeypatch.setattr(fast_cifar, "ABLATION", rows)
    out = cifar_airbench.ours(target=0.0, repeats=2, device="cpu")
    assert [r["runs"] for r in out["rows"]] == [1, 2] and "JPEG copy" in out["data"]
    last = out["rows"][-1]
    assert len(last["epoch_train_s"]) == 2 and len(last["final_accs"]) == 2
    assert last["time_to_airbench_s"] == pytest.approx(last["epoch_train_s"][0])
    result = cifar_airbench.verdict(
        {"ours": out, "airbench": {"runs": [{}], "train_s": 10.0, "final_acc": 0.0}}
    )
    assert result["ratio_time_to_airbench"] == pytest.approx(
        last["time_to_airbench_s"] / 10.0
    )


def test_airbench_gets_the_images_in_its_own_format(
    tmp_path, fake_data_dir, monkeypatch
):
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("DLBOOK_DATA", str(fake_data_dir))
    cifar_airbench._write_airbench_data(tmp_path / "cifar10")
    train = torch.load(tmp_path / "cifar10" / "train.pt")
    assert (
        train["images"].shape == (20, 32, 32, 3)
        and train["images"].dtype == torch.uint8
    )
    assert train["labels"].dtype == torch.long and len(train["classes"]) == 10


def test_benchmark_modules_import_each_other_in_one_direction():
    """No import circle (nor a lazy import hiding one): report <- each benchmark <- pages <- __main__."""
    import ast
    from pathlib import Path

    folder = Path(pages.__file__).parent
    edges = {}
    for path in folder.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names |= {node.module} if node.module else {a.name for a in node.names}
        edges[path.stem] = names

    def reaches(start, goal, seen=()):
        return any(
            n == goal or (n not in seen and reaches(n, goal, (*seen, n)))
            for n in edges.get(start, ())
        )

    assert not [m for m in edges if reaches(m, m)], f"import circle among {edges}"


def test_a_gpu_mnist_result_sits_beside_the_cpu_one(tmp_path):
    cpu = json.loads((report.RESULTS / "mnist_loop.json").read_text())
    gpu = {**cpu, "device": "cuda", "device_name": "NVIDIA H100 80GB HBM3"}
    assert mnist_loop.result_name(cpu) == "mnist_loop"
    assert mnist_loop.result_name(gpu) == "mnist_loop_cuda"
    for result in (cpu, gpu):
        report.save(mnist_loop.result_name(result), result, tmp_path)
    page = pages.write_markdown(tmp_path).read_text()
    assert "plain PyTorch loop, on a GPU" in page
    assert "trained on NVIDIA H100 80GB HBM3 (mixed precision)" in page
    assert f"trained on the CPU, {cpu['threads']} threads" in page


def test_a3c_worker_counts_double_up_to_the_limit():
    from benchmarks.__main__ import workers_upto

    assert workers_upto(1) == [1]
    assert workers_upto(8) == [1, 2, 4, 8]
    assert workers_upto(6) == [1, 2, 4, 6]


def test_a3c_scaling_goal_is_judged_against_k_times_one_worker():
    rows = [
        {"workers": k, "seed": s, "steps_per_s": rate, "time_to_target_s": None}
        for s in (0, 1)
        for k, rate in ((1, 1000.0), (2, 1900.0), (4, 2000.0))
    ]
    summary = {s["workers"]: s for s in a3c_scaling.summarise(rows)}
    assert summary[2]["speedup"] == pytest.approx(1.9) and summary[2]["goal_met"]
    assert summary[4]["speedup"] == pytest.approx(2.0)
    assert not summary[4]["goal_met"]  # 2.0 < 0.6 * 4
    assert summary[4]["reached"] == 0 and summary[4]["time_to_target_s"] is None


def test_a3c_scaling_runs_real_workers_and_reports(tmp_path):
    result = a3c_scaling.run(
        worker_counts=(1, 2), seeds=(0,), throughput_steps=2_000, target=None
    )
    assert [r["workers"] for r in result["rows"]] == [1, 2]
    for row in result["rows"]:
        assert row["backend"] == "process" and row["steps"] >= 2_000
        assert row["steps_per_s"] > 0
    report.save("a3c_scaling", result, tmp_path)
    page = pages.write_markdown(tmp_path).read_text()
    assert "A3C: throughput and time to target" in page
    assert "no time-to-target runs" in page and "usable cores" in page
    assert "not reached" not in page  # no target runs: nothing to report as missed


def test_a2c_ablation_runs_variants_and_sb3_and_summarises_by_seed_group(tmp_path):
    from benchmarks import rl_ablation

    result = rl_ablation.run(
        names=("sb3", "lr 2e-3"), seeds=[0, 30], jobs=1, budget_scale=0.01
    )
    assert {(r["name"], r["seed"]) for r in result["runs"]} == {
        (n, s) for n in ("sb3", "lr 2e-3") for s in (0, 30)
    }
    summary = result["summary"]["lr 2e-3"]
    assert summary["select"]["n"] == summary["confirm"]["n"] == 1
    assert summary["all"]["n"] == 2 and summary["all"]["mean"] > 0
    report.save("rl_a2c_ablation", result, tmp_path)
    text = pages.write_markdown(tmp_path).read_text()
    assert "what decides the steps to 475" in text and "| Stable-Baselines3" in text
    assert "| learning rates 2e-3 |" in text


def test_a2c_ablation_counts_a_miss_as_the_budget():
    from benchmarks import rl_ablation

    runs = [
        {"name": "chapter", "seed": 0, "steps": None},
        {"name": "chapter", "seed": 1, "steps": 10_000},
    ]
    s = rl_ablation.summarise(runs)["chapter"]["select"]
    assert s["reached"] == 1 and s["mean"] == pytest.approx(
        (rl_sb3.BUDGET["A2C"] + 10_000) / 2
    )


def test_the_page_goes_to_a_new_folder(tmp_path):
    """`make book` runs with --no-save and an --out folder that nothing has created: the page still gets written."""
    out = pages.write_markdown(tmp_path / "new" / "folder")
    assert out.exists() and out.parent == tmp_path / "new" / "folder"
