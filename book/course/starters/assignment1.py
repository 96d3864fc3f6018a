# %% [markdown]
# # Assignment 1: MLPs and CNNs
#
# **Starter notebook.** The brief, what to hand in and the rubric are on the book's page
# *Assignment 1: MLPs and CNNs*. Work in the cells marked ✏️ and hand in this notebook
# run from top to bottom, with its outputs. Parts 1 to 3 are checked automatically: each
# `check(...)` prints ✅, or ❌ with what is still wrong, and the same test cases grade
# your notebook. Parts 4 and 5 are graded by hand.
#
# Run it with `DLBOOK_QUICK=1` (quick mode) while you write your code: every budget
# shrinks and the experiment takes a minute or two. The numbers you report come from a
# run without it.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

import helpers
from helpers import pick
from helpers.course import check

helpers.set_style()
SEED = 0
helpers.seed_everything(SEED)
device = helpers.get_device()
print(helpers.describe_run(device))

# %% [markdown]
# ## Part 1 (10 points): softmax cross-entropy
#
# The mean cross-entropy of logits $z$ of shape (N, K) against integer targets $y$ (N,):
# $\frac{1}{N}\sum_i \big(\log \sum_k e^{z_{ik}} - z_{i y_i}\big)$. Write it without
# `torch.nn.functional` (and without `torch.nn.CrossEntropyLoss`), stable for very large
# logits: subtract each row's maximum before `exp`.


# %%
# ✏️ Your turn: replace `raise NotImplementedError` by your code, then run the cell.
def softmax_cross_entropy(logits, targets):
    """Logits (N, K), integer targets (N,) -> the mean cross-entropy, a 0-d tensor."""
    raise NotImplementedError


check("softmax_cross_entropy", softmax_cross_entropy)

# %% [markdown]
# ## Part 2 (10 points): back-propagation through a linear layer
#
# A linear layer computes $y = x W^\top + b$ for a batch $x$ (B, I), weights $W$ (O, I)
# and bias $b$ (O,). Given the gradient of the loss with respect to its output,
# $\partial L / \partial y$ (B, O), return the gradients with respect to $x$, $W$ and
# $b$, computed by hand with matrix products (no `backward()`, no `torch.autograd`).


# %%
# ✏️ Your turn: replace `raise NotImplementedError` by your code, then run the cell.
def linear_backward(x, W, grad_out):
    """x (B, I), W (O, I), grad_out = dL/dy (B, O) -> (dL/dx (B, I), dL/dW (O, I),
    dL/db (O,)) for the layer y = x W^T + b."""
    raise NotImplementedError


check("linear_backward", linear_backward)

# %% [markdown]
# ## Part 3 (10 points): the output size of a convolution
#
# The spatial size of the output of a convolution or pooling layer with a square kernel,
# for an input of `size` pixels per side, given stride and zero padding.


# %%
# ✏️ Your turn: replace `raise NotImplementedError` by your code, then run the cell.
def conv_output_size(size, kernel, stride=1, padding=0):
    """Input size, kernel size, stride, padding (whole numbers) -> output size."""
    raise NotImplementedError


check("conv_output_size", conv_output_size)

# %% [markdown]
# ## Part 4 (40 points): does a CNN need less data than an MLP?
#
# Train the book's MLP, `helpers.MLP(784, 10)`, and its CNN, `helpers.CNNModel()`, on
# MNIST training sets of different sizes and compare their test accuracy.
# `train_and_test` (given, not graded) trains one fresh model on a random subset chosen
# by the seed, with the same number of gradient steps whatever the size, and returns its
# test accuracy.
#
# 1. Write `run_experiment`: every size in `TRAIN_SIZES`, every seed in `SEEDS`, both
#    models.
# 2. Write `plot_results`: mean test accuracy against training-set size (logarithmic x
#    axis), one line per model, the spread over seeds as error bars or a band; title,
#    axis labels, legend.

# %%
TRAIN_SIZES = pick(full=[250, 500, 1_000, 2_000, 5_000], quick=[250, 1_000])
SEEDS = [SEED + i for i in range(pick(full=3, quick=2))]
STEPS = pick(full=1_000, quick=100)  # gradient steps per model, for every size
BATCH_SIZE = 64
N_TEST = pick(full=10_000, quick=2_000)  # test images behind every accuracy
MODELS = {"MLP": lambda: helpers.MLP(784, 10), "CNN": lambda: helpers.CNNModel()}
_data = {}


def mnist():
    """MNIST's training images and N_TEST test images (loaded once; the environment
    variable DLBOOK_DATA names an offline copy)."""
    if not _data:
        train, test, _ = helpers.load_train_test("mnist")
        _data.update(train=train, test=helpers.take_subset(test, N_TEST, seed=0))
    return _data["train"], _data["test"]


def train_and_test(make_model, n_train, seed):
    """Build `make_model()`, train it with Adam for about STEPS steps on `n_train`
    random training images (chosen by `seed`), and return its test accuracy."""
    train, test = mnist()
    helpers.seed_everything(seed)
    model = make_model()
    subset = helpers.take_subset(train, n_train, seed=seed)
    epochs = max(1, round(STEPS * BATCH_SIZE / len(subset)))
    loader = helpers.make_loader(subset, BATCH_SIZE, shuffle=True, seed=seed)
    helpers.fit(model, loader, epochs=epochs, lr=1e-3, progress=False)
    return helpers.evaluate(model, helpers.make_loader(test, 1_000))["acc"]


for name, make in MODELS.items():
    print(f"{name}: {helpers.count_parameters(make()):,} parameters")


# %%
# ✏️ Your turn (part 4): the experiment.
def run_experiment(sizes, seeds):
    """Test accuracy of every model in MODELS for every size and seed, using
    train_and_test: {"MLP": array of shape (len(sizes), len(seeds)), "CNN": ...}."""
    raise NotImplementedError


try:
    results = run_experiment(TRAIN_SIZES, SEEDS)
except NotImplementedError:
    results = None
    print("Part 4: run_experiment is not implemented yet.")


# %%
# ✏️ Your turn (part 4): the plot.
def plot_results(sizes, results):
    """Mean test accuracy against training-set size, one line per model, with the
    spread over the seeds."""
    raise NotImplementedError


if results is None:
    print("Part 4: no results to plot yet.")
else:
    try:
        plot_results(TRAIN_SIZES, results)
        for name, acc in results.items():
            acc = np.asarray(acc)
            rows = zip(TRAIN_SIZES, acc.mean(1), acc.std(1))
            print(name, "  ".join(f"n={n}: {m:.3f} ± {s:.3f}" for n, m, s in rows))
    except NotImplementedError:
        print("Part 4: plot_results is not implemented yet.")

# %% [markdown]
# ## Part 5 (30 points): interpretation
#
# ✏️ *Your answer, 150 to 250 words, in this cell.* At which training-set size is the
# gap between the CNN and the MLP largest, and does it grow or shrink with more data?
# Explain it with what weight sharing and pooling assume about images and with the
# parameter counts printed above (which model has more, and where do they sit?). Name
# one choice in this setup that could change the conclusion (for example the fixed
# number of gradient steps) and say how you would test it.
