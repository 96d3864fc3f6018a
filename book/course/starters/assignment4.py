# %% [markdown]
# # Assignment 4: reinforcement learning
#
# **Starter notebook.** The brief, what to hand in and the rubric are on the book's page
# *Assignment 4: reinforcement learning*. Work in the cells marked ✏️ and hand in this
# notebook run from top to bottom, with its outputs. Parts 1 to 4 are checked
# automatically: each `check(...)` prints ✅, or ❌ with what is still wrong, and the
# same test cases grade your notebook. Parts 5 and 6 are graded by hand; the two
# optional parts at the end earn bonus points.
#
# Run it with `DLBOOK_QUICK=1` (quick mode) while you write your code: every budget
# shrinks and the experiment takes a minute or two. The numbers you report come from a
# run without it.

# %%
import random

import matplotlib.pyplot as plt
import numpy as np
import torch

import helpers
from helpers import pick, rl
from helpers.course import ALL_CHECKS, check

helpers.set_style()
SEED = 0
helpers.seed_everything(SEED)

# %% [markdown]
# ## Part 1 (10 points): the Q-learning update
#
# $Q(s,a) \leftarrow Q(s,a) + \alpha\,[r + \gamma \max_{a'} Q(s',a') - Q(s,a)]$, with no
# bootstrap ($\gamma \max_{a'} Q(s', a')$ left out) when the episode *terminated* in
# $s'$. `Q` is a NumPy array of shape (states, actions), updated in place.


# %%
# ✏️ Your turn: replace `raise NotImplementedError` by your code, then run the cell.
def q_learning_update(Q, s, a, r, s_next, terminated, alpha, gamma):
    """Update Q[s, a] of the (S, A) array Q in place (return nothing)."""
    raise NotImplementedError


check("q_learning_update", q_learning_update)

# %% [markdown]
# ## Part 2 (10 points): the DQN target
#
# The TD targets $r + \gamma \max_{a'} Q_{\text{target}}(s', a')$ of a batch of
# transitions, from the target network's Q-values of the next states, with no bootstrap
# where the episode terminated.


# %%
# ✏️ Your turn: replace `raise NotImplementedError` by your code, then run the cell.
def dqn_target(rewards, next_q, terminated, gamma):
    """rewards (B,), next_q (B, A) from the target network, terminated (B,) bool
    -> targets (B,)."""
    raise NotImplementedError


check("dqn_target", dqn_target)

# %% [markdown]
# ## Part 3 (10 points): n-step returns
#
# The returns of one rollout of $T$ steps, $G_t = r_t + \gamma G_{t+1}$, bootstrapped at
# the end with the critic's value $V(s_T)$ unless the episode terminated (then $G_T =
# 0$): the targets of A2C's critic.


# %%
# ✏️ Your turn: replace `raise NotImplementedError` by your code, then run the cell.
def discounted_returns(rewards, last_value, terminated, gamma):
    """rewards (T,), V(s_T) (a number), terminated (bool), gamma -> returns (T,)."""
    raise NotImplementedError


check("discounted_returns", discounted_returns)

# %% [markdown]
# ## Part 4 (10 points): the policy-gradient loss
#
# REINFORCE and A2C minimise $-\frac{1}{T}\sum_t \log \pi(a_t \mid s_t)\, A_t$:
# minimising it follows the policy gradient (its gradient is minus the estimate). The
# advantages $A_t$ come from the critic (they may require grad), but the policy's loss
# must not train the critic: no gradient may flow into them.


# %%
# ✏️ Your turn: replace `raise NotImplementedError` by your code, then run the cell.
def policy_gradient_loss(log_probs, advantages):
    """log pi(a_t | s_t) (T,), advantages (T,) -> the loss (a 0-d tensor)."""
    raise NotImplementedError


check("policy_gradient_loss", policy_gradient_loss)

# %% [markdown]
# ## Part 5 (35 points): exploration in the taxi world
#
# Gymnasium's `Taxi-v4`: a taxi on a 5 x 5 grid picks up a passenger and drops them at
# the destination (500 states, 6 actions; -1 per step, +20 for a delivery, -10 for an
# illegal pick-up or drop-off; an episode is cut after 200 steps). Compare three ways of
# exploring with tabular Q-learning, using your `q_learning_update`:
#
# - **constant**: epsilon-greedy with $\varepsilon = 0.1$ throughout, $Q_0 = 0$;
# - **decaying**: $\varepsilon$ falls linearly from 1 to 0.05 over the first half of the
#   episodes, then stays at 0.05, $Q_0 = 0$;
# - **optimistic**: greedy ($\varepsilon = 0$), every $Q(s, a)$ starting at
#   `OPTIMISTIC`, at least as large as any true value Q*(s, a).
#
# 1. Write `q_learning`: one training run; return the return of every episode, and the
#    table.
# 2. Write `run_experiment` for the three strategies and every seed in `SEEDS`.
# 3. Write `plot_results`: the return per episode (smoothed with `rl.moving_average`)
#    for each strategy, mean over seeds with the spread; and report the greedy policy's
#    mean return after training (`greedy_return`, given) as mean ± std over seeds.

# %%
ENV_ID = "Taxi-v4"
EPISODES = pick(full=3_000, quick=200)
SEEDS = [SEED + i for i in range(pick(full=5, quick=2))]
ALPHA, GAMMA = 0.1, 0.99
OPTIMISTIC = 20.0


def epsilon_greedy(q_row, epsilon, rng):
    """A random action with probability epsilon, else a greedy one (ties broken at
    random)."""
    if rng.random() < epsilon:
        return rng.randrange(len(q_row))
    best = np.flatnonzero(q_row == q_row.max())
    return int(best[rng.randrange(len(best))])


def greedy_return(Q, episodes=100, seed=10_000):
    """Mean return of the greedy policy of table Q over `episodes` new episodes."""
    returns = rl.evaluate_policy(
        lambda obs: int(np.argmax(Q[obs])), ENV_ID, episodes=episodes, seed=seed
    )
    return float(np.mean(returns))


# %%
# ✏️ Your turn (part 5): one training run.
def q_learning(episodes, epsilon, q_init, seed):
    """Tabular Q-learning on ENV_ID with your q_learning_update (ALPHA, GAMMA).
    `epsilon(episode)` gives the exploration rate of each episode; every entry of the
    table starts at q_init. Seed the environment (rl.make_env(ENV_ID, seed=seed)) and a
    random.Random(seed) for epsilon_greedy. Returns (returns per episode, Q)."""
    raise NotImplementedError


# ✏️ Your turn (part 5): the experiment.
def run_experiment(seeds):
    """For each strategy, "constant", "decaying" and "optimistic": the pair (returns
    of shape (len(seeds), EPISODES), greedy returns of shape (len(seeds),))."""
    raise NotImplementedError


try:
    results = run_experiment(SEEDS)
except NotImplementedError:
    results = None
    print("Part 5: q_learning or run_experiment is not implemented yet.")


# %%
# ✏️ Your turn (part 5): the plot.
def plot_results(results):
    """Smoothed return per episode for each strategy (mean over seeds, with the
    spread)."""
    raise NotImplementedError


if results is None:
    print("Part 5: no results to plot yet.")
else:
    try:
        plot_results(results)
        for name, (_, greedy) in results.items():
            print(f"{name}: greedy return after training {rl.mean_std(greedy)}")
    except NotImplementedError:
        print("Part 5: plot_results is not implemented yet.")

# %% [markdown]
# ## Part 6 (25 points): interpretation
#
# ✏️ *Your answer, 150 to 250 words, in this cell.* Which strategy reaches a good policy
# in the fewest episodes, and which is the most reliable over seeds? Explain why
# optimistic initial values explore systematically while epsilon-greedy explores at
# random, and why that works in a small table but not directly in DQN's network. Run the
# optimistic strategy once more with a smaller `OPTIMISTIC` (for example 5): how does
# the result depend on how optimistic the start is, and why? Relate your answer to the
# exploration in the deep RL chapters: DQN's epsilon schedule and the entropy bonus of
# A2C.

# %% [markdown]
# ## Optional (bonus): Double DQN and GAE
#
# Two more functions from the DQN and PPO chapters, checked the same way when the book's
# `helpers` has their checkers (a recent copy does). Double DQN lets the online network
# choose the next action and the target network evaluate it; generalised advantage
# estimation (GAE) mixes n-step advantages with a factor $\lambda$.


# %%
# ✏️ Optional: replace `raise NotImplementedError` by your code, then run the cell.
def double_dqn_target(rewards, next_obs, terminated, online_net, target_net, gamma):
    """rewards (B,), next states (B, obs_dim), terminated (B,) bool, the two Q-networks
    -> targets (B,) = r + gamma * (1 - terminated) * Q_target(s', a*) with
    a* = argmax_a Q_online(s', a), carrying no gradient."""
    raise NotImplementedError


if "double_dqn_target" in ALL_CHECKS:
    check("double_dqn_target", double_dqn_target)
else:
    print("double_dqn_target: this copy of helpers has no checker for it.")


# %%
# ✏️ Optional: replace `raise NotImplementedError` by your code, then run the cell.
def gae(rewards, values, last_values, dones, gamma, lam):
    """rewards, values, dones (T, N) (N environments; dones[t]: the episode ended after
    step t), last_values (N,) -> (advantages (T, N), returns (T, N) = advantages +
    values)."""
    raise NotImplementedError


if "gae" in ALL_CHECKS:
    check("gae", gae)
else:
    print("gae: this copy of helpers has no checker for it.")
