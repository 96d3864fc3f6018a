"""Unit tests for helpers.sequence: shapes, determinism, vocabulary round trip, task labels. Runs in seconds."""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from helpers import sequence as seq


@pytest.mark.parametrize(
    "cls, attr", [(seq.RNNModel, "rnn"), (seq.LSTMModel, "lstm"), (seq.GRUModel, "gru")]
)
def test_models_read_the_last_step(cls, attr):
    model = cls(3, 16, 5, num_layers=2)
    x = torch.randn(4, 7, 3)
    assert model(x).shape == (4, 5)
    assert getattr(model, attr).batch_first and getattr(model, attr).num_layers == 2
    # only the last step's output feeds the head: changing the final input changes the answer
    x2 = x.clone()
    x2[:, -1] += 1.0
    assert not torch.allclose(model(x), model(x2))


def test_make_classifier_by_name():
    assert isinstance(seq.make_classifier("gru", 3, 8, 2), seq.GRUModel)
    assert isinstance(seq.make_classifier("lstm", 3, 8, 2), seq.LSTMModel)
    with pytest.raises(ValueError):
        seq.make_classifier("tcn", 3, 8, 2)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_char_lm_predicts_every_step_and_carries_state(cell):
    model = seq.CharLM(11, hidden_size=16, cell=cell, embed_dim=8)
    ids = torch.randint(0, 11, (2, 9))
    logits, state = model(ids)
    assert logits.shape == (2, 9, 11)
    # feeding the text in two halves with the state gives the same logits as in one go
    a, st = model(ids[:, :4])
    b, _ = model(ids[:, 4:], st)
    assert torch.allclose(torch.cat([a, b], 1), logits, atol=1e-5)
    with pytest.raises(ValueError):
        seq.CharLM(11, cell="transformer")


def test_text_ships_with_the_package_and_vocab_round_trips():
    text = seq.load_text()
    assert len(text) > 500_000 and text.startswith("PRIDE AND PREJUDICE")
    assert "public domain" in seq.TEXT_SOURCE
    vocab = seq.CharVocab(text)
    assert len(vocab) == len(set(text)) and list(vocab.chars) == sorted(vocab.chars)
    snippet = text[1000:1500]
    ids = vocab.encode(snippet)
    assert (
        ids.dtype == torch.long
        and vocab.decode(ids) == snippet
        and vocab.decode(ids.tolist()) == snippet
    )
    with pytest.raises(ValueError):
        vocab.encode("\u00e9")
    with pytest.raises(ValueError):
        seq.load_text("moby_dick")


def test_char_dataset_targets_are_shifted_inputs():
    ids = torch.arange(23)
    data = seq.CharDataset(ids, 5)
    assert len(data) == 4
    x, y = data[1]
    assert x.tolist() == [5, 6, 7, 8, 9] and y.tolist() == [6, 7, 8, 9, 10]
    with pytest.raises(IndexError):
        data[4]


def test_random_char_batch_is_seeded_and_shifted():
    ids = torch.arange(100)
    x1, y1 = seq.random_char_batch(ids, 6, 10, torch.Generator().manual_seed(3))
    x2, _ = seq.random_char_batch(ids, 6, 10, torch.Generator().manual_seed(3))
    assert x1.shape == y1.shape == (6, 10) and torch.equal(x1, x2)
    assert torch.equal(y1, x1 + 1)  # consecutive ids: the target is the next character


def test_train_evaluate_and_sample_char_lm():
    text = "abcabcabcabc" * 40
    vocab = seq.CharVocab(text)
    ids = vocab.encode(text)
    torch.manual_seed(0)
    model = seq.CharLM(len(vocab), hidden_size=32, cell="gru", embed_dim=8)
    before = seq.evaluate_char_lm(model, ids, seq_len=12)
    hist = seq.train_char_lm(
        model,
        ids,
        steps=60,
        batch_size=8,
        seq_len=12,
        lr=1e-2,
        val_ids=ids,
        eval_every=30,
    )
    assert (
        hist["step"] == [30, 60] and len(hist["val_loss"]) == 2 and hist["time_s"] > 0
    )
    after = seq.evaluate_char_lm(model, ids, seq_len=12)
    assert after < 0.3 < before  # a periodic text is easy to predict
    assert seq.perplexity(0.0) == 1.0 and math.isclose(seq.perplexity(math.log(3)), 3.0)
    out = seq.sample(model, vocab, "abc", n=9, temperature=0)
    assert out == "abc" + "abcabcabc"
    assert seq.sample(model, vocab, "a", n=20, seed=1) == seq.sample(
        model, vocab, "a", n=20, seed=1
    )
    with pytest.raises(ValueError):
        seq.sample(model, vocab, "", n=3)


def test_sample_works_for_models_without_state():
    class Bigram(nn.Module):
        block_size = 4

        def __init__(self):
            super().__init__()
            self.table = nn.Embedding(3, 3)
            with torch.no_grad():
                self.table.weight.copy_(
                    torch.tensor([[0.0, 9, 0], [0, 0, 9], [9, 0, 0]])
                )

        def forward(self, ids):
            assert ids.shape[1] <= self.block_size
            return self.table(ids)

    vocab = seq.CharVocab("xyz")
    assert seq.sample(Bigram(), vocab, "x", n=7, temperature=0) == "xyzxyzxy"


def test_recall_task_labels_shapes_and_determinism():
    x, y = seq.recall_task(50, memory_length=6, n_symbols=5, seed=1)
    assert x.shape == (50, 7, seq.recall_input_size(5)) and y.shape == (50,)
    assert torch.equal(
        x[:, :, :5].sum(-1), torch.ones(50, 7)
    )  # exactly one symbol per step
    assert (
        torch.equal(x[:, 0, 5], torch.ones(50)) and x[:, 1:, 5].sum() == 0
    )  # marker only at step 0
    assert torch.equal(x[:, 0, :5].argmax(-1), y)  # the label is the first symbol
    x2, y2 = seq.recall_task(50, memory_length=6, n_symbols=5, seed=1)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(seq.recall_task(50, 6, 5, seed=2)[0], x)
    with pytest.raises(ValueError):
        seq.recall_task(5, -1)


def test_adding_problem_labels():
    x, y = seq.adding_problem(40, 20, seed=0)
    assert x.shape == (40, 20, 2) and y.shape == (40,)
    marks = x[..., 1]
    assert torch.equal(marks.sum(1), torch.full((40,), 2.0))
    assert (marks[:, :10].sum(1) == 1).all()  # one mark in each half
    assert torch.allclose((x[..., 0] * marks).sum(1), y)
    assert torch.equal(seq.adding_problem(40, 20, seed=0)[0], x)


def test_train_recall_solves_a_short_memory_and_sweep_is_deterministic():
    torch.manual_seed(0)
    acc = seq.train_recall(
        seq.LSTMModel(seq.recall_input_size(4), 32, 4),
        2,
        steps=300,
        n_symbols=4,
        lr=1e-2,
        progress=False,
    )
    assert acc > 0.9
    make = lambda: seq.RNNModel(seq.recall_input_size(4), 8, 4)  # noqa: E731
    a = seq.recall_accuracy_vs_length(make, [1, 3], steps=5, n_symbols=4)
    b = seq.recall_accuracy_vs_length(make, [1, 3], steps=5, n_symbols=4)
    assert a == b and set(a) == {1, 3} and all(0 <= v <= 1 for v in a.values())


def test_sequential_mnist_rows_are_time_steps(fake_data_dir):
    data = seq.sequential_mnist(train=True, root=fake_data_dir)
    assert (
        data.x.shape == (20, 28, 28)
        and data.y.shape == (20,)
        and "offline copy" in data.source
    )
    xb, yb = next(iter(data.loader(8, shuffle=True)))
    assert xb.shape == (8, 28, 28) and yb.shape == (8,)
    small = data.subset(5)
    assert len(small) == 5 and torch.equal(data.subset(5).x, small.x)
    assert data.subset(None) is data
    with pytest.raises(ValueError):
        seq.SequenceDataset(torch.zeros(3, 4), torch.zeros(3))


def test_sequential_mnist_splits_are_disjoint_and_reproducible(fake_data_dir, capsys):
    fit, val, test, full = seq.sequential_mnist_splits(10, seed=1, root=fake_data_dir)
    assert (len(fit), len(val)) == (9, 1) and len(test) > 0 and full is False
    assert "NOTE: a subset" in capsys.readouterr().out
    again = seq.sequential_mnist_splits(10, seed=1, root=fake_data_dir)
    assert torch.equal(fit.x, again[0].x) and torch.equal(val.x, again[1].x)
    rows = {tuple(r.flatten().tolist()) for r in torch.cat([fit.x, val.x])}
    assert len(rows) == 10  # no digit in both splits
    with pytest.raises(ValueError):
        seq.sequential_mnist_splits(10, val_fraction=1.0, root=fake_data_dir)


@pytest.mark.parametrize("name, period", [("sunspots", 11), ("co2", 52)])
def test_series_load_offline(name, period):
    s = seq.load_series(name)
    assert len(s) > 300 and s.period == period and "public domain" in s.source
    assert np.isfinite(s.values).all() and np.all(np.diff(s.time) > 0)
    with pytest.raises(ValueError):
        seq.load_series("dow_jones")


def test_make_windows_pairs_inputs_with_the_next_value():
    x, y = seq.make_windows(np.arange(10), window=3)
    assert x.shape == (7, 3, 1) and y.shape == (7, 1)
    assert x[0, :, 0].tolist() == [0, 1, 2] and y[0, 0] == 3 and y[-1, 0] == 9
    x2, y2 = seq.make_windows(np.arange(10), window=3, horizon=2)
    assert len(x2) == 6 and y2[0, 0] == 4
    with pytest.raises(ValueError):
        seq.make_windows(np.arange(3), window=3)


def test_input_gradient_norms_vanish_for_an_rnn():
    torch.manual_seed(0)
    model = seq.RNNModel(seq.recall_input_size(), 32, 8)
    x, y = seq.recall_task(16, 29)
    norms = seq.input_gradient_norms(model, x, y)
    assert norms.shape == (30,) and (norms >= 0).all()
    assert norms[0] < 1e-3 * norms[-1]  # 30 steps back the signal is tiny
    assert all(p.grad is None for p in model.parameters())  # parameters untouched
    ratios = seq.early_gradient_ratio(
        lambda: seq.RNNModel(seq.recall_input_size(), 16, 8), [2, 10, 40]
    )
    assert ratios[2] > ratios[10] > ratios[40] > 0  # float64 keeps tiny ratios above 0
    model64 = copy.deepcopy(model).double()
    norms64 = seq.input_gradient_norms(model64, x, y)  # float32 x follows the model
    assert norms64.dtype == torch.float64
    assert torch.allclose(norms64.float(), norms, rtol=1e-3)


def test_chrono_init_draws_on_the_cpu_and_follows_the_layer_dtype():
    torch.manual_seed(0)
    a = seq.chrono_init(seq.LSTMModel(3, 4, 2), 50)
    torch.manual_seed(0)
    b = seq.chrono_init(seq.LSTMModel(3, 4, 2).double(), 50)
    assert b.lstm.bias_ih_l0.dtype == torch.float64
    assert torch.allclose(a.lstm.bias_ih_l0.double(), b.lstm.bias_ih_l0)  # same draws
    forget = a.lstm.bias_ih_l0[4:8]
    assert torch.equal(a.lstm.bias_ih_l0[:4], -forget)  # input bias = -forget bias
    assert (forget >= 0).all() and (forget <= math.log(49) + 1e-6).all()
    assert (a.lstm.bias_hh_l0[:8] == 0).all()


def test_time_epoch_counts_seconds():
    data = seq.SequenceDataset(torch.randn(32, 5, 3), torch.randint(0, 2, (32,)))
    assert seq.time_epoch(seq.GRUModel(3, 8, 2), data.loader(8)) > 0


def test_word_order_task_is_balanced_disjoint_and_only_order_differs():
    train, test = seq.word_order_task(300, 100, seed=3)
    assert len(train.texts) == 300 and len(test.texts) == 100
    assert abs(train.labels.float().mean().item() - 0.5) < 0.1
    assert not set(train.texts) & set(test.texts)
    assert all(t == t.lower() and "." not in t and "," not in t for t in train.texts)
    # a shuffled sentence is a permutation of a sentence of the book, never the sentence itself
    book = {" ".join(seq._words(s)) for s in seq._sentences(seq.load_text(), 8, 24)}
    for text, label in zip(train.texts, train.labels.tolist()):
        assert (text in book) == (label == 0)
    again, _ = seq.word_order_task(300, 100, seed=3)
    assert again.texts == train.texts and torch.equal(again.labels, train.labels)
    with pytest.raises(ValueError, match="sentences"):
        seq.word_order_task(10**6, 1)


def test_word_tokenizer_pads_truncates_and_marks_unknown_words():
    tok = seq.WordTokenizer(["it is a truth", "universally acknowledged"])
    out = tok(["it is a truth", "a zebra"], max_length=5)
    cls, sep = tok.stoi["[CLS]"], tok.stoi["[SEP]"]
    assert out["input_ids"].tolist() == [
        [cls, tok.stoi["it"], tok.stoi["is"], tok.stoi["a"], sep],
        [cls, tok.stoi["a"], tok.stoi["[UNK]"], sep, 0],
    ]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    with pytest.raises(ValueError):
        tok(["x"], padding=False)
