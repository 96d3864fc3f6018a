import pytest
import torch

from helpers import describe_run, get_device, is_quick, mode, pick, seed_everything


def test_quick_mode_switch(monkeypatch):
    monkeypatch.setenv("DLBOOK_QUICK", "1")
    assert is_quick() and mode() == "quick" and pick(full=10, quick=2) == 2
    monkeypatch.setenv("DLBOOK_QUICK", "0")
    assert not is_quick() and mode() == "full" and pick(full=10, quick=2) == 10
    monkeypatch.delenv("DLBOOK_QUICK")
    assert mode() == "full", (
        "full mode must be the default: it is what the website shows"
    )


def test_device_auto_and_override(monkeypatch):
    expected = (
        "cuda"
        if torch.cuda.is_available()
        else ("mps" if torch.backends.mps.is_available() else "cpu")
    )
    assert get_device().type == expected
    monkeypatch.setenv("DLBOOK_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    assert get_device("cpu") == torch.device("cpu")
    assert "device=cpu" in describe_run(torch.device("cpu"))


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the error raised where CUDA is absent"
)
def test_missing_device_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        get_device("cuda")


def test_seeding_repeats_exactly():
    seed_everything(123)
    a = torch.randn(5), torch.nn.Linear(3, 3).weight.clone()
    seed_everything(123)
    b = torch.randn(5), torch.nn.Linear(3, 3).weight.clone()
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError):
        seed_everything(-1)


def test_seed_everything_sets_tf32_explicitly():
    """float32 means float32 on a GPU too, unless a chapter asks for TF32 (the flags exist without CUDA)."""
    seed_everything(0, tf32=True)
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    seed_everything(0)
    assert (
        not torch.backends.cuda.matmul.allow_tf32
        and not torch.backends.cudnn.allow_tf32
    )
