"""The speed recipe's pieces on a CPU with tiny inputs: whitening, weight averaging, test-time
augmentation, every ablation row for one step, and the benchmark's table for a made-up result.

The real measurement (the ablation table against airbench) is ``make bench`` on a GPU.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from benchmarks import cifar_airbench, pages, report
from helpers import fast_cifar


def _fake_data(n: int = 64, n_test: int = 16) -> fast_cifar.CifarTensors:
    g = torch.Generator().manual_seed(0)
    return fast_cifar.CifarTensors(
        torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
        torch.randint(0, 10, (n,), generator=g),
        torch.randint(0, 256, (n_test, 3, 32, 32), dtype=torch.uint8, generator=g),
        torch.randint(0, 10, (n_test,), generator=g),
    )


def test_whitening_layer_whitens_the_patches_it_was_fitted_on():
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(3, 3, generator=g)  # correlated colour channels
    images = torch.einsum("dc,nchw->ndhw", mix, torch.randn(50, 3, 16, 16, generator=g))
    images = images + 0.5 * images.roll(1, dims=3)  # and correlated neighbours
    layer = fast_cifar.Whitening(3, kernel=2)
    layer.fit(images, eps=0.0)
    with torch.no_grad():
        out = layer(images) - layer.bias[:, None, None]  # the weights' part
    first = out[:, :12].permute(1, 0, 2, 3).reshape(12, -1)  # eigenvector channels
    second_moment = first @ first.T / first.shape[1]
    assert torch.allclose(second_moment, torch.eye(12), atol=1e-3)
    assert torch.allclose(out[:, 12:], -out[:, :12])  # then their negatives
    assert not layer.weight.requires_grad and layer.out_channels == 24


def test_lookahead_moves_the_average_and_copies_it_back():
    net = torch.nn.Linear(2, 1)
    with torch.no_grad():
        net.weight.fill_(1.0)
    avg = fast_cifar.Lookahead(net)
    with torch.no_grad():
        net.weight.fill_(3.0)
    avg.update(net, decay=0.75)  # 0.75 * 1 + 0.25 * 3
    assert torch.allclose(net.weight, torch.full((1, 2), 1.5))
    assert torch.allclose(avg.avg["weight"], torch.full((1, 2), 1.5))
    with torch.no_grad():
        net.weight.fill_(5.0)
    avg.update(net, decay=1.0)  # decay 1: back to the average, the step is undone
    assert torch.allclose(net.weight, torch.full((1, 2), 1.5))
    d = [fast_cifar.lookahead_decay(s, 100) for s in (10, 50, 100)]
    assert d[0] < d[1] < d[2] == pytest.approx(0.95**5)


def test_tta_averages_the_mirror_and_shifted_views():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    model = torch.nn.Flatten()  # logits = the pixels: the output is the average view

    def view(v: torch.Tensor) -> torch.Tensor:
        return v.flatten(1)

    assert torch.equal(fast_cifar.tta_logits(model, x, 0), view(x))
    mirror = 0.5 * (view(x) + view(x.flip(-1)))
    assert torch.allclose(fast_cifar.tta_logits(model, x, 1), mirror)
    pad = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    up_left, down_right = pad[..., :4, :4], pad[..., 2:, 2:]
    assert torch.equal(up_left[0, 0, 1:, 1:], x[0, 0, :3, :3])  # shifted by one pixel
    expected = 0.5 * mirror + 0.125 * sum(
        view(v) + view(v.flip(-1)) for v in (up_left, down_right)
    )
    assert torch.allclose(fast_cifar.tta_logits(model, x, 2), expected)
    with pytest.raises(ValueError):
        fast_cifar.tta_logits(model, x, 3)


def test_alternating_flip_shows_each_image_both_ways_in_two_epochs():
    x = torch.arange(4 * 3 * 2 * 2, dtype=torch.float32).reshape(4, 3, 2, 2)
    mask = torch.tensor([True, False, True, False])
    e0, e1 = (
        fast_cifar.alternate_flip(x, mask, 0),
        fast_cifar.alternate_flip(x, mask, 1),
    )
    assert torch.equal(e0[0], x[0].flip(-1)) and torch.equal(e0[1], x[1])
    assert torch.equal(e1, e0.flip(-1))


def test_decoupled_hyperparameters_and_triangle_schedule():
    lr, wd = fast_cifar.decoupled_sgd(11.5, 0.0153, 0.85, 1024)
    assert lr == pytest.approx(1.5) and lr * wd == pytest.approx(0.0153 * 0.15 / 1.15)
    lr2, wd2 = fast_cifar.decoupled_sgd(11.5, 0.0153, 0.85, 512)
    assert lr2 == pytest.approx(lr / 2) and lr2 * wd2 == pytest.approx(lr * wd / 2)
    tri = [fast_cifar.triangle(s, 100) for s in (0, 23, 100)]
    assert tri == pytest.approx([0.2, 1.0, 0.07])


def test_the_ablation_adds_one_ingredient_per_row_up_to_the_final_recipe():
    rows = fast_cifar.ABLATION
    assert rows[0] == dataclasses.replace(fast_cifar.SpeedConfig())  # the chapter's
    assert rows[-1] is fast_cifar.FINAL and len({r.added for r in rows}) == len(rows)
    for before, after in zip(rows, rows[1:]):
        changed = [
            f.name
            for f in dataclasses.fields(before)
            if getattr(before, f.name) != getattr(after, f.name) and f.name != "added"
        ]
        assert changed, f"row {after.added!r} changes nothing"
    final = fast_cifar.FINAL
    assert (
        final.whiten and final.lookahead and final.tta == 2 and final.arch == "compact"
    )


@pytest.mark.parametrize("k", range(len(fast_cifar.ABLATION)))
def test_each_ablation_row_builds_and_takes_a_training_step_on_the_cpu(k):
    torch.set_num_threads(1)
    config = fast_cifar.ABLATION[k]
    out = fast_cifar.train(config, _fake_data(), "cpu", max_steps=1)
    assert out["steps"] == 1 and len(out["epoch_train_s"]) == 1
    assert 0.0 <= out["final_acc"] <= 1.0 and out["train_s"] > 0
    net = fast_cifar.build_net(config)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_benchmark_markdown_shows_the_ablation_the_ratio_and_the_goal(tmp_path):
    rows = [
        {"added": added, "runs": runs, "final_acc": acc, "train_s": secs}
        | {"time_to_airbench_s": t, "time_to_94_s": None}
        for added, runs, acc, secs, t in [
            ("the chapter's ResNet-9 recipe", 1, 0.88, 40.0, None),
            ("test-time augmentation", 5, 0.905, 4.2, 3.9),
        ]
    ]
    fake = {
        "airbench": {"runs": [{}] * 5, "train_s": 3.0, "final_acc": 0.9011},
        "ours": {"rows": rows, "data": "CIFAR-10 (JPEG copy), 50,000 training"},
    }
    fake = cifar_airbench.verdict(fake)
    assert fake["ratio_time_to_airbench"] == pytest.approx(1.3) and fake["goal_met"]
    report.save("cifar_airbench", fake, tmp_path)
    text = pages.write_markdown(tmp_path).read_text()
    assert "1.30x" in text and "goal <= 1.5x: met" in text
    assert "| 0. the chapter's ResNet-9 recipe | 0.8800 | 40.0 | not reached |" in text
    assert "1. test-time augmentation (mean of 5 runs)" in text and "airbench94" in text
    fake["ours"]["rows"][-1]["time_to_airbench_s"] = None
    assert not cifar_airbench.verdict(fake)["goal_met"]
    assert "not reached; goal <= 1.5x: not met" in "\n".join(
        cifar_airbench.markdown(
            {**cifar_airbench.verdict(fake), "machine": report.machine()}
        )
    )
