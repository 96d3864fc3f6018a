import pytest
import torch

from helpers import MLP, CNNModel, ResNet9, count_parameters


def test_mlp_is_the_seed_architecture():
    model = MLP(784, 10)
    assert model(torch.randn(5, 1, 28, 28)).shape == (5, 10)
    assert count_parameters(model) == 784 * 64 + 64 + 64 * 10 + 10
    assert MLP(13, 1, hidden=(32, 16), dropout=0.2)(torch.randn(4, 13)).shape == (4, 1)


def test_cnn_is_the_seed_architecture_and_sizes_itself():
    model = CNNModel()
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert model.classifier[1].in_features == 32 * 5 * 5
    assert CNNModel(in_channels=3, num_classes=4, image_size=32)(
        torch.randn(2, 3, 32, 32)
    ).shape == (2, 4)


def test_resnet9_shapes_and_width():
    assert ResNet9(width=8)(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert 6_000_000 < count_parameters(ResNet9()) < 7_000_000


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(input_dim=0, output_dim=10),
        dict(input_dim=784, output_dim=10, hidden=(0,)),
        dict(input_dim=784, output_dim=10, dropout=1.0),
    ],
)
def test_bad_mlp_sizes_are_value_errors(kwargs):
    with pytest.raises(ValueError):
        MLP(**kwargs)
