# %% [markdown]
# # Assignment 3: generative models
#
# **Starter notebook.** The brief, what to hand in and the rubric are on the book's page
# *Assignment 3: generative models*. Work in the cells marked ✏️ and hand in this
# notebook run from top to bottom, with its outputs. Parts 1 to 3 are checked
# automatically: each `check(...)` prints ✅, or ❌ with what is still wrong, and the
# same test cases grade your notebook. Parts 4 and 5 are graded by hand.
#
# Run it with `DLBOOK_QUICK=1` (quick mode) while you write your code: every budget
# shrinks and the experiment takes a minute or two. The numbers you report come from a
# run without it.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA

import helpers
from helpers import generative as gen
from helpers import pick
from helpers.course import check

helpers.set_style()
SEED = 0
helpers.seed_everything(SEED)
device = helpers.get_device()
print(helpers.describe_run(device))

# %% [markdown]
# ## Part 1 (10 points): PSNR
#
# The peak signal-to-noise ratio of images with pixel values in $[0, 1]$: $10
# \log_{10}(1 / \text{MSE})$ in dB, the mean squared error taken over all pixels of the
# batch. Higher is better; every halving of the MSE adds about 3 dB.


# %%
# ✏️ Your turn: replace `raise NotImplementedError` by your code, then run the cell.
def psnr(x, y):
    """Two image batches with values in [0, 1] -> PSNR in dB (one number)."""
    raise NotImplementedError


check("psnr", psnr)

# %% [markdown]
# ## Part 2 (10 points): the non-saturating generator loss
#
# $-\frac{1}{N}\sum_i \log D(G(z_i))$ from the discriminator's *logits* on generated
# images, numerically stable (no `sigmoid` followed by `log`).


# %%
# ✏️ Your turn: replace `raise NotImplementedError` by your code, then run the cell.
def generator_loss(d_fake_logits):
    """Discriminator logits (N,) on generated images -> the mean loss (a 0-d tensor)."""
    raise NotImplementedError


check("generator_loss", generator_loss)

# %% [markdown]
# ## Part 3 (10 points): the discriminator loss
#
# The discriminator is a binary classifier: real images should get the label
# `real_label` (1, or 0.9 with the one-sided label smoothing of the GAN chapter),
# generated images the label 0. Its loss is the binary cross-entropy of each batch, from
# logits, averaged over each batch, and the two averages added.


# %%
# ✏️ Your turn: replace `raise NotImplementedError` by your code, then run the cell.
def discriminator_loss(real_logits, fake_logits, real_label=1.0):
    """Logits (N,) on real images, logits (M,) on generated ones -> the loss (0-d)."""
    raise NotImplementedError


check("discriminator_loss", discriminator_loss)

# %% [markdown]
# ## Part 4 (40 points): how small can the code be?
#
# An autoencoder squeezes each image through a code of `code_size` numbers. Principal
# component analysis (PCA) with as many components is the best *linear* code for the
# mean squared error. How much does the autoencoder's non-linearity buy, and at which
# code sizes? `train_autoencoder` and `pca_reconstructions` (given, not graded) train
# the book's `gen.Autoencoder(latent_dim=code_size)` on MNIST and fit PCA on the same
# training images.
#
# 1. Write `run_experiment`: the test PSNR (with your `psnr`) of the autoencoder for
#    every code size in `CODE_SIZES` and every seed in `SEEDS`, and of PCA for every
#    code size.
# 2. Write `plot_results`: test PSNR against code size (logarithmic x axis) for both,
#    the autoencoder's spread over seeds shown; and a figure of a few test digits with
#    their reconstructions by both methods at the smallest and the largest code size
#    (`helpers.show_images` draws a grid of images).

# %%
CODE_SIZES = pick(full=[2, 4, 8, 16, 32, 64], quick=[2, 16])
SEEDS = [SEED + i for i in range(pick(full=3, quick=2))]
EPOCHS = pick(full=20, quick=2)
N_TRAIN = pick(full=None, quick=2_000)  # training images (None = every image present)
N_TEST = pick(full=5_000, quick=1_000)
_data = {}


def images():
    """MNIST pixels in [0, 1]: (x_train, x_test), each (N, 1, 28, 28); loaded once."""
    if not _data:
        train, test, _ = helpers.load_train_test("mnist")
        g = torch.Generator().manual_seed(0)
        n = len(train) if N_TRAIN is None else min(N_TRAIN, len(train))
        chosen = torch.randperm(len(train), generator=g)[:n]
        _data["train"] = train.images[chosen].float() / 255
        _data["test"] = test.images[:N_TEST].float() / 255
    return _data["train"], _data["test"]


def train_autoencoder(code_size, seed):
    """The book's MLP autoencoder with a code of `code_size` numbers, trained with the
    mean squared error for EPOCHS epochs; returned on the CPU, in eval mode."""
    x_train, _ = images()
    helpers.seed_everything(seed)
    model = gen.Autoencoder(latent_dim=code_size).to(device)
    gen.train_autoencoder(model, x_train.to(device), epochs=EPOCHS, seed=seed)
    return model.cpu().eval()


def pca_reconstructions(code_size, x):
    """x (N, 1, 28, 28) reconstructed from its first `code_size` principal components
    (PCA fitted on the training images), clipped to [0, 1]."""
    x_train, _ = images()
    pca = PCA(n_components=code_size, random_state=0).fit(x_train.flatten(1).numpy())
    codes = pca.transform(x.flatten(1).numpy())
    out = torch.as_tensor(pca.inverse_transform(codes), dtype=torch.float32)
    return out.clamp(0, 1).view_as(x)


# %%
# ✏️ Your turn (part 4): the experiment.
def run_experiment(code_sizes, seeds):
    """{"autoencoder": array of test PSNRs of shape (len(code_sizes), len(seeds)),
    "PCA": array of shape (len(code_sizes),)}, using your psnr."""
    raise NotImplementedError


try:
    results = run_experiment(CODE_SIZES, SEEDS)
except NotImplementedError:
    results = None
    print("Part 4: run_experiment is not implemented yet.")


# %%
# ✏️ Your turn (part 4): the plots.
def plot_results(code_sizes, results):
    """Test PSNR against code size for both methods (the autoencoder's spread over seeds
    shown), and test digits next to their reconstructions."""
    raise NotImplementedError


if results is None:
    print("Part 4: no results to plot yet.")
else:
    try:
        plot_results(CODE_SIZES, results)
        ae, pca = np.asarray(results["autoencoder"]), np.asarray(results["PCA"])
        for d, m, s, p in zip(CODE_SIZES, ae.mean(1), ae.std(1), pca):
            print(f"code size {d}: autoencoder {m:.2f} ± {s:.2f} dB, PCA {p:.2f} dB")
    except NotImplementedError:
        print("Part 4: plot_results is not implemented yet.")

# %% [markdown]
# ## Part 5 (30 points): interpretation
#
# ✏️ *Your answer, 150 to 250 words, in this cell.* At which code sizes does the
# autoencoder beat PCA, and by how many dB compared with the spread over seeds? Explain
# the trend from what a linear code can and cannot represent. Look at the
# reconstructions: what does PSNR fail to capture about their quality? Finally, what
# would make the autoencoder a *generative* model from which you could sample new
# digits, and what does a GAN (parts 2 and 3) do differently?
