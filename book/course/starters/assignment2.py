# %% [markdown]
# # Assignment 2: sequence models
#
# **Starter notebook.** The brief, what to hand in and the rubric are on the book's page
# *Assignment 2: sequence models*. Work in the cells marked ✏️ and hand in this notebook
# run from top to bottom, with its outputs. Parts 1 to 3 are checked automatically: each
# `check(...)` prints ✅, or ❌ with what is still wrong, and the same test cases grade
# your notebook. Parts 4 and 5 are graded by hand.
#
# Run it with `DLBOOK_QUICK=1` (quick mode) while you write your code: every budget
# shrinks and the experiment takes a minute or two. The numbers you report come from a
# run without it.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

import helpers
from helpers import pick
from helpers import sequence as seq
from helpers.course import check

helpers.set_style()
torch.set_num_threads(1)  # small recurrent models: one CPU thread is the fastest
SEED = 0
helpers.seed_everything(SEED)
device = helpers.get_device()
print(helpers.describe_run(device))

# %% [markdown]
# ## Part 1 (10 points): one LSTM step
#
# One step of an LSTM cell for a batch, with PyTorch's weight layout: the $4H$
# pre-activations $x W_{ih}^\top + h W_{hh}^\top + b$ are the input, forget, cell and
# output gates in that order (i, f, g, o); $c' = f \odot c + i \odot g$ and $h' = o
# \odot \tanh(c')$.


# %%
# ✏️ Your turn: replace `raise NotImplementedError` by your code, then run the cell.
def lstm_step(x, h, c, W_ih, W_hh, b):
    """x (B, I), h and c (B, H), W_ih (4H, I), W_hh (4H, H), b (4H,)
    -> (h_new, c_new)."""
    raise NotImplementedError


check("lstm_step", lstm_step)

# %% [markdown]
# ## Part 2 (10 points): scaled dot-product attention
#
# $\operatorname{softmax}(q k^\top / \sqrt{d})\, v$, with an optional boolean mask of
# shape (T, S) in which `True` means "may attend" (a masked score becomes $-\infty$
# before the softmax). Do not call `torch.nn.functional.scaled_dot_product_attention`.


# %%
# ✏️ Your turn: replace `raise NotImplementedError` by your code, then run the cell.
def scaled_dot_product_attention(q, k, v, mask=None):
    """q (B, T, d), k (B, S, d), v (B, S, dv), mask (T, S) bool or None
    -> (B, T, dv)."""
    raise NotImplementedError


check("scaled_dot_product_attention", scaled_dot_product_attention)

# %% [markdown]
# ## Part 3 (10 points): sinusoidal positional encoding
#
# The table of Vaswani et al. (2017) that tells a Transformer where each token is:
# $PE_{pos, 2i} = \sin(pos / 10000^{2i/d})$ and $PE_{pos, 2i+1} = \cos(pos /
# 10000^{2i/d})$ for an even model width $d$. Do not call the book's own
# `helpers.attention.sinusoidal_positional_encoding`.


# %%
# ✏️ Your turn: replace `raise NotImplementedError` by your code, then run the cell.
def positional_encoding(max_len, d_model):
    """Number of positions, even model width -> the (max_len, d_model) table."""
    raise NotImplementedError


check("positional_encoding", positional_encoding)

# %% [markdown]
# ## Part 4 (40 points): how far back can a recurrent network remember?
#
# The *adding problem* (Hochreiter and Schmidhuber, 1997): a sequence of `seq_len` steps
# holds a random number in channel 0 and a marker in channel 1 at two positions, one in
# each half; the target is the sum of the two marked numbers. `seq.adding_problem(n,
# seq_len, seed)` makes `n` such sequences, shape (n, seq_len, 2), and their targets
# (n,). Always answering 1 scores a mean squared error near 0.167 (`baseline_mse`
# below). A model that uses the second number but cannot remember the first one can
# answer 0.5 + x2 and reach 1/12 = 0.083: only an error clearly below 0.083 shows
# memory.
#
# 1. Write `train_adding`: train `make_model(cell)` with Adam on fresh batches (a new
#    seed for every step) for `STEPS` steps, clipping the gradient norm to 1, and return
#    the mean squared error on `N_TEST` test sequences that training never sees.
# 2. Write `run_experiment` for the cells "rnn", "lstm" and "gru", every length in
#    `SEQ_LENGTHS` and every seed in `SEEDS`.
# 3. Write `plot_results`: test MSE against sequence length, one line per cell with the
#    spread over seeds, and the baseline and 1/12 as horizontal lines.

# %%
SEQ_LENGTHS = pick(full=[10, 25, 50, 100], quick=[10, 25])
SEEDS = [SEED + i for i in range(pick(full=3, quick=2))]
STEPS = pick(full=2_000, quick=100)  # training steps (batches) per model
BATCH_SIZE = 64
HIDDEN = 32
N_TEST = 1_000
CELLS = ["rnn", "lstm", "gru"]


def make_model(cell):
    """A one-layer recurrent network ("rnn", "lstm" or "gru") with HIDDEN units that
    reads 2 features per step and predicts one number from its last hidden state:
    output shape (batch, 1), so squeeze it before comparing with targets of shape
    (batch,) (mse_loss would otherwise broadcast to (batch, batch))."""
    return seq.make_classifier(cell, 2, HIDDEN, 1)


def baseline_mse(seq_len, seed=0):
    """The test MSE of always answering 1 (the mean target)."""
    _, y = seq.adding_problem(N_TEST, seq_len, seed=seed)
    return float(((y - 1.0) ** 2).mean())


print("baseline MSE:", {n: round(baseline_mse(n), 3) for n in SEQ_LENGTHS})


# %%
# ✏️ Your turn (part 4): training and testing one model.
def train_adding(cell, seq_len, seed):
    """Train make_model(cell) on the adding problem of length seq_len; return its test
    MSE. Seed everything with `seed`, and keep the test sequences apart from the
    training ones (e.g. seed=10_000 + seed for the test set)."""
    raise NotImplementedError


# ✏️ Your turn (part 4): the experiment.
def run_experiment(lengths, seeds):
    """Test MSE of every cell in CELLS for every length and seed:
    {"rnn": array of shape (len(lengths), len(seeds)), "lstm": ..., "gru": ...}."""
    raise NotImplementedError


try:
    results = run_experiment(SEQ_LENGTHS, SEEDS)
except NotImplementedError:
    results = None
    print("Part 4: train_adding or run_experiment is not implemented yet.")


# %%
# ✏️ Your turn (part 4): the plot.
def plot_results(lengths, results):
    """Test MSE against sequence length, one line per cell with the spread over seeds,
    and the baseline."""
    raise NotImplementedError


if results is None:
    print("Part 4: no results to plot yet.")
else:
    try:
        plot_results(SEQ_LENGTHS, results)
        for cell, mse in results.items():
            mse = np.asarray(mse)
            rows = zip(SEQ_LENGTHS, mse.mean(1), mse.std(1))
            print(cell, "  ".join(f"T={n}: {m:.4f} ± {s:.4f}" for n, m, s in rows))
    except NotImplementedError:
        print("Part 4: plot_results is not implemented yet.")

# %% [markdown]
# ## Part 5 (30 points): interpretation
#
# ✏️ *Your answer, 150 to 250 words, in this cell.* Up to which length does each cell
# get clearly below 1/12, and how consistent is that over the seeds? Explain the
# difference (or its absence) between the plain RNN and the gated cells with what you
# wrote in part 1 (the cell state and the forget gate) and with the vanishing gradient.
# Would a Transformer encoder with the positional encoding of part 3 have the same
# difficulty with long sequences? Argue from how attention connects the two marked
# steps, and say what it would cost instead.
