"""Sequence models and sequence data for the RNN, LSTM, GRU and Transformer chapters.

Import it on its own: ``from helpers import sequence as seq``. Everything runs offline: the text ships
inside this package, the time series inside ``statsmodels``, MNIST comes from :func:`helpers.load_mnist`
and the long-memory tasks are generated.

Public API
----------
Models (inputs are ``batch_first``: ``(batch, time, features)``)
    ``RNNModel(input_size, hidden_size, output_size, num_layers=1)``  ``nn.RNN``, last step -> ``nn.Linear``
    ``LSTMModel(...)``, ``GRUModel(...)``                             same signature, ``nn.LSTM`` / ``nn.GRU``
    ``make_classifier(cell, input_size, hidden_size, output_size, num_layers=1)``  one of the three by name
    ``chrono_init(model, t_max)``: forget/input-gate biases of every nn.LSTM set for memories of ~t_max steps
    ``CharLM(vocab_size, hidden_size=256, cell="lstm", embed_dim=64, num_layers=1, dropout=0.0)``
        character language model: ``model(ids, state=None) -> (logits (B, T, V), state)``
Text (Pride and Prejudice, public domain; see :data:`TEXT_SOURCE`)
    ``load_text(name="pride_and_prejudice") -> str``
    ``CharVocab(text)``: ``encode(str) -> LongTensor``, ``decode(ids) -> str``, ``len(vocab)``, ``chars``
    ``CharDataset(ids, seq_len)``: non-overlapping ``(x, y)`` windows, ``y`` is ``x`` shifted by one character
    ``random_char_batch(ids, batch_size, seq_len, generator) -> (x, y)``
    ``train_char_lm(model, train_ids, *, steps, ..., val_ids=None) -> dict`` (loss curves, seconds)
    ``evaluate_char_lm(model, ids, seq_len=128, batch_size=64, max_windows=None) -> float`` (nats per char)
    ``perplexity(loss_nats) -> float``
    ``word_order_task(n_train, n_test, seed=0) -> (train, test)``: ``TextPairs`` of sentences of the book, half
        of them with their words shuffled (label 1), for fine-tuning a text classifier offline
    ``WordTokenizer(sentences)``: a word-level vocabulary called like a Hugging Face tokenizer
        (``tok(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")``)
    ``sample(model, vocab, prompt, n=200, temperature=1.0, seed=0) -> str``
      (recurrent models return ``(logits, state)``; a model returning bare logits is re-run on its last
      ``model.block_size`` characters at every step, so Transformers work too)
Long-memory tasks
    ``recall_task(n, memory_length, n_symbols=8, seed=0) -> (x (n, L+1, n_symbols+1), y (n,))``
    ``recall_input_size(n_symbols=8) -> int``
    ``adding_problem(n, seq_len, seed=0) -> (x (n, T, 2), y (n,))``
    ``train_recall(model, memory_length, *, steps, batch_size=64, lr=3e-3, ...) -> float`` (test accuracy)
    ``recall_accuracy_vs_length(make_model, lengths, *, steps, ..., return_models=False) -> dict[int, float]``
Sequential MNIST
    ``sequential_mnist(train=True, root=None) -> SequenceDataset`` (x ``(N, 28, 28)``: 28 rows as 28 steps)
    ``sequential_mnist_splits(n_train=None, seed=0, val_fraction=0.1) -> (train, val, test, full_data)``, printing the data note
    ``SequenceDataset``: ``.x``, ``.y``, ``.source``, ``.loader(batch_size, shuffle, seed)``
Time series
    ``load_series(name="sunspots" | "co2") -> Series`` (``values``, ``time``, ``unit``, ``period``, ``source``)
    ``make_windows(values, window, horizon=1) -> (x (N, window, 1), y (N, 1))``
Gradients and timing
    ``input_gradient_norms(model, x, y, loss_fn=None) -> Tensor (T,)``: mean ``||dLoss/dx_t||`` per step
    ``early_gradient_ratio(make_model, lengths, n=64, seed=0) -> dict[int, float]``: ``||dL/dx_1|| / ||dL/dx_T||``
    ``time_epoch(model, loader, lr=1e-3) -> float``: seconds for one training epoch
"""

from __future__ import annotations

import gzip
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .data import FULL_TRAIN_SIZE, TensorLoader, load_mnist

DATA_FILES = Path(__file__).resolve().parent / "data_files"

#: Where the text comes from and under which terms, printed by the chapters that use it.
TEXT_SOURCE = (
    "Jane Austen, 'Pride and Prejudice' (1813): public domain. Project Gutenberg's plain-text edition "
    "as packaged in the R package janeaustenr 1.0.0 (Julia Silge, MIT licence; Debian package "
    "r-cran-janeaustenr), shipped gzipped in helpers/data_files/pride_and_prejudice.txt.gz."
)

_TEXTS = {"pride_and_prejudice": "pride_and_prejudice.txt.gz"}
_CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


# --- models ------------------------------------------------------------------------------------------


class RNNModel(nn.Module):
    """Elman RNN classifier/regressor: ``nn.RNN``, last hidden state -> ``nn.Linear``.

    Reading only the last step makes the whole sequence's information pass through one hidden vector,
    which is exactly what the long-memory experiments probe.
    """

    def __init__(
        self, input_size: int, hidden_size: int, output_size: int, num_layers: int = 1
    ):
        super().__init__()
        self.rnn = nn.RNN(
            input_size, hidden_size, num_layers=num_layers, batch_first=True
        )
        self.fc = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(
            x
        )  # out: (batch, time, hidden), the top layer's h_t for every t
        return self.fc(out[:, -1])  # predict from the last time step


class LSTMModel(nn.Module):
    """LSTM: ``nn.LSTM`` (Hochreiter & Schmidhuber 1997), last step -> Linear."""

    def __init__(
        self, input_size: int, hidden_size: int, output_size: int, num_layers: int = 1
    ):
        super().__init__()
        self.lstm = nn.LSTM(
            input_size, hidden_size, num_layers=num_layers, batch_first=True
        )
        self.fc = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, (h_n, c_n) = self.lstm(
            x
        )  # h_n, c_n: final hidden and cell states, (layers, batch, hidden)
        return self.fc(out[:, -1])


class GRUModel(nn.Module):
    """GRU: ``nn.GRU`` (Cho et al. 2014), last step -> Linear."""

    def __init__(
        self, input_size: int, hidden_size: int, output_size: int, num_layers: int = 1
    ):
        super().__init__()
        self.gru = nn.GRU(
            input_size, hidden_size, num_layers=num_layers, batch_first=True
        )
        self.fc = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return self.fc(out[:, -1])


def chrono_init(model: nn.Module, t_max: float) -> nn.Module:
    """Chrono initialisation of every ``nn.LSTM`` in ``model`` (Tallec & Ollivier, 2018); returns ``model``.

    PyTorch starts the forget-gate bias near 0, so ``f ~ 0.5`` and a fresh LSTM forgets half its cell state
    at every step: after 20 steps a stored value is down to 1e-6 and so is its gradient. Chrono sets the
    forget bias ``b_f = log(u)`` with ``u ~ Uniform(1, t_max - 1)`` per unit, so unit ``j`` starts with a
    memory time constant of about ``u_j`` steps, and the input bias ``b_i = -b_f`` so the cell is not
    flooded by every input. (The classic fix, a forget bias of 1, gives ``f ~ 0.73``: enough for tens of
    steps, not hundreds.) Gate order in PyTorch's weights is input, forget, cell (g), output.
    """
    if t_max <= 2:
        raise ValueError(f"t_max must exceed 2, got {t_max}")
    for lstm in (m for m in model.modules() if isinstance(m, nn.LSTM)):
        h = lstm.hidden_size
        for layer in range(lstm.num_layers):
            b_ih, b_hh = (
                getattr(lstm, f"bias_ih_l{layer}"),
                getattr(lstm, f"bias_hh_l{layer}"),
            )
            with torch.no_grad():
                # drawn on the CPU (the same numbers on every device), then moved to
                # the layer's device and dtype
                b_f = torch.log(torch.empty(h).uniform_(1.0, t_max - 1.0)).to(b_ih)
                b_ih[h : 2 * h] = b_f  # forget gate
                b_ih[:h] = -b_f  # input gate
                b_hh[: 2 * h] = 0.0
    return model


def make_classifier(
    cell: str, input_size: int, hidden_size: int, output_size: int, num_layers: int = 1
) -> nn.Module:
    """``RNNModel``, ``LSTMModel`` or ``GRUModel`` by name (``"rnn"``, ``"lstm"``, ``"gru"``), for comparison loops."""
    classes = {"rnn": RNNModel, "lstm": LSTMModel, "gru": GRUModel}
    if cell not in classes:
        raise ValueError(f"cell must be one of {sorted(classes)}, got {cell!r}")
    return classes[cell](input_size, hidden_size, output_size, num_layers)


class CharLM(nn.Module):
    """Character language model: embedding -> recurrent cell -> a linear layer over the vocabulary at every step.

    Trained with next-character cross-entropy, it predicts ``p(c_{t+1} | c_1..c_t)`` at each position; the
    returned ``state`` lets :func:`sample` continue a text one character at a time without re-reading it.
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int = 256,
        cell: str = "lstm",
        embed_dim: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
    ):
        super().__init__()
        if cell not in _CELLS:
            raise ValueError(f"cell must be one of {sorted(_CELLS)}, got {cell!r}")
        self.cell = cell
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.rnn = _CELLS[cell](
            embed_dim,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(
        self,
        ids: torch.Tensor,
        state: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        out, state = self.rnn(self.embed(ids), state)
        return self.head(self.drop(out)), state


# --- text ------------------------------------------------------------------------------------------


def load_text(name: str = "pride_and_prejudice") -> str:
    """A public-domain book shipped with this package (see :data:`TEXT_SOURCE`), as one string.

    It lives in the package, not in ``DLBOOK_DATA``, so the text chapters run offline and in Colab alike.
    """
    if name not in _TEXTS:
        raise ValueError(f"unknown text {name!r}; choose one of {sorted(_TEXTS)}")
    with gzip.open(DATA_FILES / _TEXTS[name], "rt", encoding="utf-8") as f:
        return f.read()


@dataclass
class TextPairs:
    """Sentences and their labels (``texts[i]`` has label ``labels[i]``)."""

    texts: list[str]
    labels: torch.Tensor  # (N,) int64


def _words(sentence: str) -> list[str]:
    """A sentence as lower-case words without punctuation: what the word-order task shows a model."""
    return re.findall(r"[a-z0-9']+", sentence.lower())


def _sentences(text: str, min_words: int, max_words: int) -> list[str]:
    """The book's sentences of ``min_words`` to ``max_words`` words, whitespace normalised, each once."""
    flat = re.sub(r"\s+", " ", text.replace("_", ""))
    found = re.findall(r"[A-Z][^.!?]*[.!?]", flat)
    seen, out = set(), []
    for sentence in found:
        n = len(sentence.split())
        if min_words <= n <= max_words and sentence not in seen:
            seen.add(sentence)
            out.append(sentence)
    return out


def word_order_task(
    n_train: int,
    n_test: int,
    seed: int = 0,
    *,
    min_words: int = 8,
    max_words: int = 24,
    text: str = "pride_and_prejudice",
) -> tuple[TextPairs, TextPairs]:
    """A labelled text task that ships with the package: is this sentence of the book as written (0), or are
    its words shuffled (1)?

    Sentences are lower-cased words without punctuation, so the two classes contain exactly the same words and
    a bag-of-words model is at chance: only word order separates them, the knowledge a pretrained language
    model brings. Training and test sentences are disjoint; every sentence is used once, as written or
    shuffled (half each, at random).
    """
    pool = _sentences(load_text(text), min_words, max_words)
    if n_train + n_test > len(pool):
        raise ValueError(
            f"asked for {n_train + n_test} sentences, the book has {len(pool)} that fit"
        )
    rng = np.random.default_rng(seed)
    chosen = [pool[i] for i in rng.permutation(len(pool))[: n_train + n_test]]
    labels = rng.permutation(np.arange(len(chosen)) % 2)
    texts = []
    for sentence, label in zip(chosen, labels):
        # lower case, no punctuation: no capital letter or full stop can give a shuffle away
        words = _words(sentence)
        if label:
            order = rng.permutation(len(words))
            # draw again while the shuffle changes nothing
            while np.array_equal(order, np.arange(len(words))):
                order = rng.permutation(len(words))
            words = [words[i] for i in order]
        texts.append(" ".join(words))
    y = torch.as_tensor(labels, dtype=torch.long)
    return TextPairs(texts[:n_train], y[:n_train]), TextPairs(
        texts[n_train:], y[n_train:]
    )


class WordTokenizer:
    """Lower-cased words and punctuation of some sentences as a vocabulary, called like a Hugging Face tokenizer.

    Offline there is no pretrained tokenizer; this one lets the same fine-tuning code run. Ids 0-3 are
    ``[PAD]``, ``[UNK]``, ``[CLS]`` and ``[SEP]``; every encoded text is ``[CLS] words [SEP]``, padded.
    """

    SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
    PAD, UNK, CLS, SEP = range(4)  # their ids

    def __init__(self, sentences: Iterable[str]):
        words = sorted({w for s in sentences for w in self.split(s)})
        self.itos = list(self.SPECIAL) + words
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @staticmethod
    def split(text: str) -> list[str]:
        return re.findall(r"[a-z0-9']+|[^\sa-z0-9']", text.lower())

    def __len__(self) -> int:
        return len(self.itos)

    def __call__(
        self,
        texts: Sequence[str],
        *,
        padding: bool = True,
        truncation: bool = True,
        max_length: int = 32,
        return_tensors: str = "pt",
    ) -> dict[str, torch.Tensor]:
        if not (padding and truncation and return_tensors == "pt"):
            raise ValueError(
                "only padding=True, truncation=True, return_tensors='pt' are implemented"
            )
        words = [[self.stoi.get(w, self.UNK) for w in self.split(t)] for t in texts]
        ids = [[self.CLS, *w[: max_length - 2], self.SEP] for w in words]
        width = max(len(i) for i in ids)
        input_ids = torch.full((len(ids), width), self.PAD, dtype=torch.long)
        for row, i in enumerate(ids):
            input_ids[row, : len(i)] = torch.as_tensor(i)
        return {
            "input_ids": input_ids,
            "attention_mask": (input_ids != self.PAD).long(),
        }


class CharVocab:
    """The sorted set of characters of a text, with ``encode`` (text -> ids) and ``decode`` (ids -> text).

    Characters, not words: a tiny vocabulary (about 75 symbols here), no unknown words, and the model has
    to learn spelling itself, which makes its progress easy to read in samples.
    """

    def __init__(self, text: str):
        if not text:
            raise ValueError("cannot build a vocabulary from an empty text")
        self.chars: tuple[str, ...] = tuple(sorted(set(text)))
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        missing = sorted(set(text) - self.stoi.keys())
        if missing:
            raise ValueError(f"characters not in the vocabulary: {missing!r}")
        return torch.tensor([self.stoi[c] for c in text], dtype=torch.long)

    def decode(self, ids: Iterable[int] | torch.Tensor) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return "".join(self.chars[i] for i in ids)

    def __repr__(self) -> str:
        return f"CharVocab({len(self)} characters)"


class CharDataset(torch.utils.data.Dataset):
    """Non-overlapping windows of ``seq_len`` characters; the target is the same window shifted by one."""

    def __init__(self, ids: torch.Tensor, seq_len: int):
        if seq_len < 1 or len(ids) < seq_len + 1:
            raise ValueError(
                f"need seq_len >= 1 and at least seq_len + 1 ids, got {seq_len} and {len(ids)}"
            )
        self.ids, self.seq_len = ids, seq_len

    def __len__(self) -> int:
        return (len(self.ids) - 1) // self.seq_len

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        start = i * self.seq_len
        return self.ids[start : start + self.seq_len], self.ids[
            start + 1 : start + self.seq_len + 1
        ]


def random_char_batch(
    ids: torch.Tensor,
    batch_size: int,
    seq_len: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` windows starting at random offsets: every step sees new text, no epoch bookkeeping."""
    if len(ids) < seq_len + 1:
        raise ValueError(
            f"text of {len(ids)} ids is shorter than seq_len + 1 = {seq_len + 1}"
        )
    starts = torch.randint(0, len(ids) - seq_len, (batch_size,), generator=generator)
    offsets = torch.arange(seq_len + 1)
    windows = ids[starts[:, None] + offsets]
    return windows[:, :-1], windows[:, 1:]


def _logits(out: torch.Tensor | tuple) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


def evaluate_char_lm(
    model: nn.Module,
    ids: torch.Tensor,
    seq_len: int = 128,
    batch_size: int = 64,
    max_windows: int | None = None,
) -> float:
    """Mean next-character cross-entropy in nats over non-overlapping windows (``exp`` of it is the perplexity).

    Each window starts from an empty state, as in training, so recurrent models and Transformers with a
    context of ``seq_len`` are scored on the same footing.
    """
    device = next(model.parameters()).device
    data = CharDataset(ids, seq_len)
    n = len(data) if max_windows is None else min(len(data), max_windows)
    xs = torch.stack([data[i][0] for i in range(n)])
    ys = torch.stack([data[i][1] for i in range(n)])
    was_training = model.training
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, n, batch_size):
            x, y = xs[i : i + batch_size].to(device), ys[i : i + batch_size].to(device)
            logits = _logits(model(x))
            total += nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"
            ).item()
    model.train(was_training)
    return total / (n * seq_len)


def train_char_lm(
    model: nn.Module,
    train_ids: torch.Tensor,
    *,
    steps: int,
    batch_size: int = 32,
    seq_len: int = 128,
    lr: float = 3e-3,
    grad_clip: float = 1.0,
    val_ids: torch.Tensor | None = None,
    eval_every: int = 100,
    val_windows: int | None = 200,
    seed: int = 0,
    desc: str = "char LM",
) -> dict[str, list[float] | float]:
    """Train a character language model for ``steps`` Adam steps on random windows; return its curves.

    Returned keys: ``step``, ``train_loss`` (mean over the last ``eval_every`` steps), ``val_loss`` (if
    ``val_ids``) and ``time_s`` (training seconds, evaluation excluded). Gradient clipping guards the
    recurrent models against the exploding gradients their chapter measures; the learning rate decays
    with a cosine schedule so short runs still end on a low loss.
    """
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=steps, eta_min=lr / 10
    )
    hist: dict[str, list[float] | float] = {
        "step": [],
        "train_loss": [],
        "val_loss": [],
    }
    running, count, train_time = 0.0, 0, 0.0
    model.train()
    for step in tqdm(range(1, steps + 1), desc=desc, unit="step"):
        start = time.perf_counter()
        x, y = random_char_batch(train_ids, batch_size, seq_len, g)
        x, y = x.to(device), y.to(device)
        logits = _logits(model(x))
        loss = nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), y.reshape(-1)
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        sched.step()
        train_time += time.perf_counter() - start
        running, count = running + loss.item(), count + 1
        if step % eval_every == 0 or step == steps:
            hist["step"].append(step)
            hist["train_loss"].append(running / count)
            running, count = 0.0, 0
            if val_ids is not None:
                hist["val_loss"].append(
                    evaluate_char_lm(model, val_ids, seq_len, max_windows=val_windows)
                )
    hist["time_s"] = train_time
    return hist


def sample(
    model: nn.Module,
    vocab: CharVocab,
    prompt: str,
    n: int = 200,
    temperature: float = 1.0,
    seed: int = 0,
) -> str:
    """Continue ``prompt`` by ``n`` characters drawn from the model's next-character distribution.

    ``temperature`` divides the logits: below 1 the text is safer and more repetitive, above 1 more
    surprising; ``0`` takes the most likely character every time (greedy decoding). Seeded, so a chapter
    prints the same sample at every run.
    """
    if not prompt:
        raise ValueError("the prompt must contain at least one character")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    ids = vocab.encode(prompt).unsqueeze(0).to(device)
    was_training = model.training
    model.eval()
    generated: list[int] = []
    with torch.no_grad():
        out = model(ids)
        stateful = isinstance(out, tuple)
        context = getattr(model, "block_size", None)
        for _ in range(n):
            logits, state = (out[0], out[1]) if stateful else (out, None)
            last = logits[0, -1].float().cpu()
            if temperature == 0:
                nxt = int(last.argmax())
            else:
                nxt = int(
                    torch.multinomial(
                        torch.softmax(last / temperature, dim=-1), 1, generator=g
                    )
                )
            generated.append(nxt)
            step = torch.tensor([[nxt]], device=device)
            if stateful:
                out = model(step, state)
            else:
                ids = torch.cat([ids, step], dim=1)
                out = model(ids if context is None else ids[:, -context:])
    model.train(was_training)
    return prompt + vocab.decode(generated)


# --- long-memory tasks -----------------------------------------------------------------------------


def recall_input_size(n_symbols: int = 8) -> int:
    """Features per step of :func:`recall_task`: one channel per symbol plus the 'remember this' marker."""
    return n_symbols + 1


def recall_task(
    n: int,
    memory_length: int,
    n_symbols: int = 8,
    seed: int = 0,
    distractors: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The delayed-recall task: remember the symbol shown at the first step, answer after ``memory_length`` more.

    Each sequence has ``memory_length + 1`` steps of one-hot symbols (``n_symbols`` channels) and a marker
    channel that is 1 only at step 0. Steps 1..L hold random distractor symbols from the same alphabet, so
    the model cannot just keep the most recent input: it must store the marked one and ignore ``L`` later
    inputs. With ``distractors=False`` steps 1..L are all zeros instead: a pure test of how long a state
    survives. The label is the first symbol; chance accuracy is ``1 / n_symbols``. Deterministic in ``seed``.
    """
    if n < 1 or memory_length < 0 or n_symbols < 2:
        raise ValueError(
            f"need n >= 1, memory_length >= 0, n_symbols >= 2; got {n}, {memory_length}, {n_symbols}"
        )
    g = torch.Generator().manual_seed(seed)
    symbols = torch.randint(0, n_symbols, (n, memory_length + 1), generator=g)
    x = torch.zeros(n, memory_length + 1, n_symbols + 1)
    x.scatter_(2, symbols.unsqueeze(-1), 1.0)
    x[:, 0, n_symbols] = 1.0
    if not distractors:
        x[:, 1:] = 0.0
    return x, symbols[:, 0].clone()


def adding_problem(
    n: int, seq_len: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The adding problem of Hochreiter & Schmidhuber (1997), in the later variant of Le et al. (2015) and
    Arjovsky et al. (2016): output the sum of the two marked numbers.

    Channel 0 holds uniform random numbers in [0, 1); channel 1 marks two positions, one in the first half
    and one in the second half, so the first marked number must be held for at least ``seq_len / 2`` steps.
    Always predicting 1 gives a mean squared error of about 0.167; solving it means an error near 0.
    """
    if n < 1 or seq_len < 2:
        raise ValueError(f"need n >= 1 and seq_len >= 2, got {n} and {seq_len}")
    g = torch.Generator().manual_seed(seed)
    values = torch.rand(n, seq_len, generator=g)
    half = seq_len // 2
    first = torch.randint(0, half, (n,), generator=g)
    second = torch.randint(half, seq_len, (n,), generator=g)
    marks = torch.zeros(n, seq_len)
    rows = torch.arange(n)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    return torch.stack([values, marks], dim=-1), values[rows, first] + values[
        rows, second
    ]


def train_recall(
    model: nn.Module,
    memory_length: int,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    n_symbols: int = 8,
    distractors: bool = True,
    grad_clip: float = 1.0,
    n_test: int = 1000,
    seed: int = 0,
    patience_acc: float = 0.99,
    progress: bool = True,
    desc: str | None = None,
) -> float:
    """Train ``model`` on fresh :func:`recall_task` batches for up to ``steps`` steps; return test accuracy.

    Every step draws new sequences (an endless training set, so the test accuracy measures memory, not
    over-fitting). Training stops early once the mean accuracy over the last 20 batches reaches
    ``patience_acc``: easy lengths finish in seconds and the time goes to the hard ones.
    """
    device = next(model.parameters()).device
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    recent: list[float] = []
    model.train()
    # only pass `disable` to turn the bar off: left unset, the TQDM_DISABLE environment variable still works
    bar = tqdm(
        range(steps),
        desc=desc or f"recall L={memory_length}",
        unit="step",
        **({} if progress else {"disable": True}),
    )
    for step in bar:
        x, y = recall_task(
            batch_size,
            memory_length,
            n_symbols,
            seed=seed * 1_000_003 + step + 1,
            distractors=distractors,
        )
        x, y = x.to(device), y.to(device)
        out = model(x)
        loss = nn.functional.cross_entropy(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        recent = (recent + [(out.argmax(1) == y).float().mean().item()])[-20:]
        if len(recent) == 20 and sum(recent) / 20 >= patience_acc:
            break
    bar.close()
    x, y = recall_task(
        n_test, memory_length, n_symbols, seed=seed + 7_919, distractors=distractors
    )  # held out
    model.eval()
    with torch.no_grad():
        acc = (model(x.to(device)).argmax(1).cpu() == y).float().mean().item()
    return acc


def recall_accuracy_vs_length(
    make_model: Callable[[], nn.Module],
    lengths: Sequence[int],
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    n_symbols: int = 8,
    distractors: bool = True,
    seed: int = 0,
    desc: str = "",
    return_models: bool = False,
) -> dict[int, float] | tuple[dict[int, float], dict[int, nn.Module]]:
    """Test accuracy of a freshly built ``make_model()`` trained on :func:`recall_task` at each memory length.

    Every length starts from the same seed, so curves of different architectures are compared on
    identical data and identical budgets. ``return_models=True`` also returns the trained models by length,
    for looking inside them afterwards.
    """
    results, models = {}, {}
    for length in lengths:
        torch.manual_seed(seed)
        model = make_model()
        results[int(length)] = train_recall(
            model,
            int(length),
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            n_symbols=n_symbols,
            distractors=distractors,
            seed=seed,
            desc=f"{desc} L={length}".strip(),
        )
        models[int(length)] = model
    return (results, models) if return_models else results


# --- sequential MNIST ------------------------------------------------------------------------------


class SequenceDataset(torch.utils.data.Dataset):
    """Sequences ``x`` of shape ``(N, T, F)`` with labels ``y``, held in memory; ``source`` says where they came from."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, source: str = "tensors"):
        if len(x) != len(y) or x.ndim != 3:
            raise ValueError(
                f"need x of shape (N, T, F) and N labels, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        self.x, self.y, self.source = x, y, source

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]

    def subset(self, n: int | None, seed: int = 0) -> SequenceDataset:
        """A random ``n`` of the sequences (all if ``n`` is None or larger): quick mode's shrinker."""
        if n is None or n >= len(self):
            return self
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[
            :n
        ]
        return SequenceDataset(self.x[idx], self.y[idx], f"{self.source} (random {n})")

    def loader(
        self, batch_size: int = 128, shuffle: bool = False, seed: int = 0
    ) -> TensorLoader:
        """Batches sliced straight from the tensors (see :class:`helpers.TensorLoader`)."""
        return TensorLoader(self.x, self.y, batch_size, shuffle=shuffle, seed=seed)


def sequential_mnist(
    train: bool = True, root: str | Path | None = None
) -> SequenceDataset:
    """MNIST read row by row: each digit becomes 28 time steps of 28 normalised pixel values.

    The model sees one row at a time and must integrate the whole image in its state before answering,
    which turns an easy vision task into a 28-step memory task (Le et al., 2015, use pixel by pixel: 784 steps).
    """
    images = load_mnist(train, root=root)
    x, y = images.tensors()
    return SequenceDataset(x.squeeze(1).contiguous(), y, images.source)


def sequential_mnist_splits(
    n_train: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    root: str | Path | None = None,
) -> tuple[SequenceDataset, SequenceDataset, SequenceDataset, bool]:
    """Row-by-row MNIST as ``(train, validation, test, full_data)``, printing where the data came from.

    ``n_train`` training digits are drawn at random (all when ``None``; quick mode passes fewer) and
    ``val_fraction`` of them held out for validation. ``full_data`` says whether the complete 60,000-digit
    training split was present, which decides a chapter's quality gates; with a subset (such as the
    5,000-image offline copy) a note says that accuracies are lower. Every sequence chapter uses this, so the
    splits and the note are the same everywhere.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    train, test = sequential_mnist(True, root), sequential_mnist(False, root)
    full_data = len(train) >= FULL_TRAIN_SIZE["mnist"]
    print(f"data source: {train.source}")
    print(
        f"training digits available: {len(train):,}  (complete MNIST training split: {full_data})"
    )
    if not full_data:
        print(
            "NOTE: a subset of the MNIST training split (e.g. the 5,000-image offline copy): accuracies are lower "
            "than\n      with all 60,000 digits; the quality gates take that into account."
        )
    pool = train.subset(n_train, seed=seed)
    perm = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))
    n_val = int(len(pool) * val_fraction)
    val = SequenceDataset(
        pool.x[perm[:n_val]], pool.y[perm[:n_val]], "validation split"
    )
    fit = SequenceDataset(pool.x[perm[n_val:]], pool.y[perm[n_val:]], "training split")
    print(
        f"train {len(fit):,} / validation {len(val):,} / test {len(test):,} sequences of "
        f"{fit.x.shape[1]} time steps x {fit.x.shape[2]} features (one image row per step)"
    )
    return fit, val, test, full_data


# --- time series -----------------------------------------------------------------------------------


@dataclass
class Series:
    """A univariate time series: ``values[i]`` observed at ``time[i]`` (decimal years)."""

    name: str
    values: np.ndarray
    time: np.ndarray
    unit: str
    period: int
    source: str

    def __len__(self) -> int:
        return len(self.values)


def load_series(name: str = "sunspots") -> Series:
    """A real series bundled with statsmodels (no download): ``"sunspots"`` or ``"co2"``.

    * ``sunspots``: yearly mean sunspot number 1700-2008 (NOAA, public domain); the solar cycle makes
      it roughly periodic with a period near 11 years (``period=11``) and irregular amplitudes.
    * ``co2``: weekly Mauna Loa CO2 in ppm 1958-2001 (Keeling & Whorf, public domain), a trend plus a
      yearly cycle (``period=52``); missing weeks are filled by linear interpolation.
    """
    from statsmodels.datasets import (
        co2,
        sunspots,
    )  # imported here: only the time-series chapters need it

    if name == "sunspots":
        df = sunspots.load_pandas().data
        return Series(
            "sunspots",
            df["SUNACTIVITY"].to_numpy(np.float32),
            df["YEAR"].to_numpy(np.float64),
            "mean sunspot number",
            11,
            "NOAA yearly sunspot numbers 1700-2008 via statsmodels "
            "(statsmodels.datasets.sunspots; public domain)",
        )
    if name == "co2":
        df = co2.load_pandas().data.interpolate()
        idx = df.index
        years = (idx.year + (idx.day_of_year - 1) / 365.25).to_numpy(np.float64)
        return Series(
            "co2",
            df["co2"].to_numpy(np.float32),
            years,
            "CO2 (ppm)",
            52,
            "Mauna Loa weekly CO2 1958-2001, Keeling & Whorf, via statsmodels "
            "(statsmodels.datasets.co2; public domain)",
        )
    raise ValueError(f"unknown series {name!r}; choose 'sunspots' or 'co2'")


def make_windows(
    values: np.ndarray | torch.Tensor, window: int, horizon: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Supervised pairs from a series: ``x[i] = values[i:i+window]``, ``y[i] = values[i+window+horizon-1]``.

    Shapes ``(N, window, 1)`` and ``(N, 1)`` with ``N = len(values) - window - horizon + 1``: the input
    format of :class:`RNNModel` with one feature per step.
    """
    v = torch.as_tensor(np.asarray(values, dtype=np.float32))
    n = len(v) - window - horizon + 1
    if window < 1 or horizon < 1 or n < 1:
        raise ValueError(
            f"a series of {len(v)} values has no window of {window} with horizon {horizon}"
        )
    idx = torch.arange(n)[:, None] + torch.arange(window)
    return v[idx].unsqueeze(-1), v[
        window + horizon - 1 : window + horizon - 1 + n
    ].unsqueeze(-1)


# --- gradients and timing --------------------------------------------------------------------------


def input_gradient_norms(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """``||dLoss/dx_t||`` for every time step ``t``, averaged over the batch: shape ``(T,)``.

    The loss is computed from the model's last step only, so the gradient at an early ``t`` is exactly the
    signal that backpropagation through time carries back over ``T - t`` steps. For a one-layer cell it
    is ``W_ih^T`` times the gradient on the step's pre-activation; vanishing shows as a decay towards
    ``t = 0``. Works for any model taking ``(batch, time, features)``; parameter gradients are left untouched.
    """
    param = next(model.parameters())
    # the model's device and precision (a float64 copy of a model gets float64 inputs)
    dtype = param.dtype if x.is_floating_point() else x.dtype
    x = x.detach().to(param.device, dtype).requires_grad_(True)
    loss_fn = loss_fn or nn.functional.cross_entropy
    was_training = model.training
    model.eval()
    loss = loss_fn(_logits(model(x)), y.to(param.device))
    (grad,) = torch.autograd.grad(loss, x)
    model.train(was_training)
    return grad.norm(dim=-1).mean(0).cpu()


def early_gradient_ratio(
    make_model: Callable[[], nn.Module],
    lengths: Sequence[int],
    n: int = 64,
    n_symbols: int = 8,
    seed: int = 0,
) -> dict[int, float]:
    """For each sequence length ``T``: ``||dL/dx_1|| / ||dL/dx_T||`` of a freshly initialised model on recall data.

    A ratio near 1 means the first input still gets as much gradient as the last; a ratio of 1e-6 means
    the loss is, for learning purposes, blind to it. The same ``seed`` builds the same weights for each length;
    the model runs in float64 so that tiny ratios stay measurable (float32 underflows below about 1e-38).
    """
    out = {}
    for length in lengths:
        torch.manual_seed(seed)
        model = (
            make_model().double()
        )  # float64: ratios below 1e-38 would underflow to 0 in float32
        x, y = recall_task(n, int(length) - 1, n_symbols, seed=seed)
        norms = input_gradient_norms(model, x.double(), y)
        out[int(length)] = float(norms[0] / norms[-1])
    return out


def time_epoch(
    model: nn.Module,
    loader: Iterable,
    lr: float = 1e-3,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """Wall-clock seconds of one training epoch (forward, backward, Adam step) over ``loader``.

    Used to compare architectures on identical data; on a GPU the device is synchronised before the clock stops.
    """
    device = next(model.parameters()).device
    loss_fn = loss_fn or nn.functional.cross_entropy
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    start = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        loss = loss_fn(_logits(model(x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def perplexity(loss_nats: float) -> float:
    """``exp(loss)``: the effective number of characters the model hesitates between at each step."""
    return math.exp(loss_nats)


__all__ = [
    "TEXT_SOURCE",
    "DATA_FILES",
    "RNNModel",
    "LSTMModel",
    "GRUModel",
    "make_classifier",
    "chrono_init",
    "CharLM",
    "load_text",
    "CharVocab",
    "CharDataset",
    "random_char_batch",
    "train_char_lm",
    "evaluate_char_lm",
    "sample",
    "perplexity",
    "recall_input_size",
    "recall_task",
    "adding_problem",
    "train_recall",
    "recall_accuracy_vs_length",
    "SequenceDataset",
    "sequential_mnist",
    "Series",
    "load_series",
    "make_windows",
    "input_gradient_norms",
    "early_gradient_ratio",
    "time_epoch",
]
