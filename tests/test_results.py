"""Unit tests for helpers.results: recording a chapter's numbers and turning them into the results page."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import results

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"  # committed


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DLBOOK_RESULTS", str(tmp_path))
    monkeypatch.setenv("DLBOOK_QUICK", "1")
    return tmp_path


def test_record_writes_plain_json_per_mode(folder):
    returned = results.record(
        "cnn",
        {
            "test_acc": np.float32(0.9875),
            "epochs": 3,
            "nan": float("nan"),
            "numpy_nan": np.float64("nan"),
        },
        data="MNIST subset",
        curves={"val_acc": torch.tensor([0.5, 0.9]), "gap": np.array([np.nan, 1.0])},
        device=torch.device("cpu"),
    )
    path = folder / "quick" / "cnn.json"
    assert returned is None, (
        "a returned value would be printed below the chapter's cell"
    )
    entry = json.loads(path.read_text())
    assert entry["mode"] == "quick" and entry["data"] == "MNIST subset"
    assert entry["metrics"] == {
        "test_acc": pytest.approx(0.9875),
        "epochs": 3,
        "nan": None,
        "numpy_nan": None,
    }
    assert "NaN" not in path.read_text() and entry["curves"]["gap"] == [None, 1.0]
    assert entry["curves"]["val_acc"] == pytest.approx([0.5, 0.9])
    assert (
        entry["wall_time_s"] >= 0
        and entry["device"].startswith("cpu")
        and "torch" in entry["versions"]
    )


def test_load_results_and_tables(folder):
    results.record("b_chapter", {"return": 500.0}, device=torch.device("cpu"))
    results.record(
        "a_chapter", {"acc": 0.5, "steps": 12345}, device=torch.device("cpu")
    )
    loaded = results.load_results()
    assert [r["chapter"] for r in loaded] == ["a_chapter", "b_chapter"]
    table = results.markdown_tables(loaded)
    assert (
        "| a_chapter | quick |" in table
        and "| Steps | 12,345 |" in table
        and "| Return | 500 |" in table
    )
    assert results.load_results("full") == []
    assert "No results recorded" in results.markdown_tables([])


def test_main_writes_the_page(folder, tmp_path):
    results.record("mlp", {"acc": 0.9}, device=torch.device("cpu"))
    out = tmp_path / "page.md"
    assert results.main([str(out), "quick"]) == 0
    assert "| mlp | quick |" in out.read_text()
    assert results.main([]) == 2
    assert (
        "comparison" not in out.read_text().lower()
    )  # no chapter recorded a comparison curve
    assert (
        "| mlp | see the results page | quick |"
        in (tmp_path / "_headlines.md").read_text()
    )  # no headline metric


def test_comparison_plots_from_recorded_curves(folder, tmp_path):
    steps = list(range(0, 1000, 10))
    results.record(
        "dqn",
        {"ret": 1.0},
        device=torch.device("cpu"),
        curves={
            "cartpole_return": {
                "label": "DQN",
                "steps": steps,
                "return": [s / 2 for s in steps],
            }
        },
    )
    results.record(
        "ppo",
        {"ret": 1.0},
        device=torch.device("cpu"),
        curves={"cartpole_return": {"steps": steps[:5], "return": [1, 2, 3, 4, 5]}},
    )  # shorter than a window
    out = tmp_path / "page.md"
    assert results.main([str(out), "quick"]) == 0
    text = out.read_text()
    assert (
        "![CartPole-v1" in text
        and "_results_cartpole.png" in text
        and "_results_recall.png" not in text
    )
    png = tmp_path / "_results_cartpole.png"
    assert png.exists() and png.stat().st_size > 5_000


def test_headline_table_formats_known_chapters_and_tolerates_others(folder):
    results.record(
        "gan",
        {"frechet_dcgan": 3.25, "frechet_real_floor": 0.5},
        device=torch.device("cpu"),
    )
    results.record("new_chapter", {"x": 1}, device=torch.device("cpu"))
    table = results.headline_table(results.load_results())
    assert (
        "DCGAN Fréchet distance 3.25 (real data 0.50)" in table
        and "| new_chapter | see the results page |" in table
    )
    assert "No results" in results.headline_table([])


def test_package_command_line(folder, tmp_path):
    from helpers.__main__ import cli

    results.record("mlp", {"acc": 0.9}, device=torch.device("cpu"))
    assert (
        cli(["results", str(tmp_path / "page.md"), "quick"]) == 0
        and (tmp_path / "page.md").exists()
    )
    assert cli([]) == 2 and cli(["nonsense"]) == 2


@pytest.mark.parametrize(
    "chapter, metrics", [("", {"a": 1}), ("bad/name", {"a": 1}), ("ok", {})]
)
def test_record_rejects_bad_input(folder, chapter, metrics):
    with pytest.raises(ValueError):
        results.record(chapter, metrics, device=torch.device("cpu"))


def test_full_mode_records_beside_the_quick_numbers(folder, tmp_path, monkeypatch):
    """The quick site's landing table also shows each chapter's latest committed full-mode record, and where
    it ran; the results page gets the records' own table."""
    monkeypatch.setenv("DLBOOK_QUICK", "0")
    results.record(
        "cnn",
        {"cnn_test_acc": 0.9926},
        data="MNIST, 60,000",
        device=torch.device("cpu"),
    )
    full = folder / "full" / "cnn.json"
    records = tmp_path / "records"
    records.mkdir()
    (records / "cnn.json").write_text(full.read_text())
    assert json.loads(full.read_text())["commit"]  # the tests run from a git checkout
    monkeypatch.setenv("DLBOOK_QUICK", "1")
    results.record("cnn", {"cnn_test_acc": 0.95}, device=torch.device("cpu"))
    results.record("dqn", {"greedy_return_mean": 200.0}, device=torch.device("cpu"))
    out = tmp_path / "page.md"
    assert results.main([str(out), "quick", "--records", str(records)]) == 0
    head = (tmp_path / "_headlines.md").read_text()
    assert (
        "latest full-mode record" in head and "MNIST test accuracy 0.9926 (cpu" in head
    )
    assert (
        "| dqn | CartPole greedy return 200.0 / 500 | quick |" in head
        and "not recorded yet" in head
    )
    table = (tmp_path / "_records.md").read_text()
    assert (
        "| cnn | MNIST test accuracy 0.9926 | MNIST, 60,000 |" in table
        and "commit" in table
    )
    assert "<details>" not in table  # no printed output kept for this record
    # what the run printed, kept beside its record, unfolds below the table
    (records / "cnn.out.txt").write_text(">>> print(acc)\ntest accuracy 0.9926\n")
    assert results.main([str(out), "quick", "--records", str(records)]) == 0
    table = (tmp_path / "_records.md").read_text()
    assert (
        "<summary>cnn: what the full-mode run printed (cpu" in table
        and "```text\n>>> print(acc)\ntest accuracy 0.9926\n```" in table
    )
    assert results.main([str(out), "quick", "--records"]) == 2


def test_every_committed_record_with_printed_output_matches_it():
    """A record's printed output must be its own run's: every metric of the record appears in it."""
    folder = RESULTS / "full_records"
    records = [results.load_record(p) for p in sorted(folder.glob("*.json"))]
    assert any("printed" in r for r in records)  # the check below is not empty
    for record in (r for r in records if "printed" in r):
        for key, value in record["metrics"].items():
            if isinstance(value, float) and abs(value) >= 1e-3:
                digits = (2, 3, 4) if abs(value) < 10 else (0, 1, 2)  # as printed
                shown = {f"{value:.{d}f}" for d in digits} | {f"{value:,.0f}"}
                assert any(s in record["printed"] for s in shown), (
                    record["chapter"],
                    key,
                )


def test_metric_names_read_as_words_and_missing_values_say_so(folder):
    assert (
        results.label("reinforce_median_steps_to_195")
        == "REINFORCE median steps to 195"
    )
    assert (
        results.label("char_lm_val_loss_nats")
        == "Character language model validation loss (nats)"
    )
    assert (
        results.label("mean_shift_acc CNN + augmentation")
        == "Mean shift accuracy CNN + augmentation"
    )
    results.record(
        "a2c",
        {"reinforce_median_steps_to_195": float("inf")},
        device=torch.device("cpu"),
    )
    table = results.markdown_tables(results.load_results())
    assert (
        "| REINFORCE median steps to 195 | not reached / not measured |" in table
        and "None" not in table
    )


def test_committed_records_are_strict_json():
    """No NaN or Infinity in the committed JSON: Python reads them, strict parsers do not."""

    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    files = sorted(RESULTS.rglob("*.json"))
    assert files
    for path in files:
        json.loads(path.read_text(), parse_constant=refuse)
