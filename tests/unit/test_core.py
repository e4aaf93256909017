"""Scales, device and seeding (the training loop: test_train.py; the viz helpers: test_viz.py)."""

import pytest
import torch

from nbsupport import device, preset, seed_everything

PRESETS = {"smoke": {"n": 1}, "standard": {"n": 2}, "full": {"n": 3}}


def test_preset_picks_scale_and_env_override(monkeypatch):
    monkeypatch.delenv("NBSUPPORT_SCALE", raising=False)
    assert preset(PRESETS, "standard").n == 2
    monkeypatch.setenv("NBSUPPORT_SCALE", "smoke")
    assert preset(PRESETS, "full").n == 1


def test_preset_errors(monkeypatch):
    monkeypatch.delenv("NBSUPPORT_SCALE", raising=False)
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        preset(PRESETS, "huge")
    with pytest.raises(ValueError, match="lacks scale"):
        preset({"smoke": {}}, "smoke")


def test_device_and_seed(monkeypatch):
    monkeypatch.setenv("NBSUPPORT_DEVICE", "cpu")
    assert device() == torch.device("cpu")
    seed_everything(3)
    a = torch.rand(3)
    g = seed_everything(3)
    assert torch.equal(a, torch.rand(3))
    assert isinstance(g, torch.Generator)
    with pytest.raises(ValueError):
        seed_everything(-1)


def test_positive_int_env(monkeypatch):
    from nbsupport.env import positive_int_env

    monkeypatch.delenv("NBSUPPORT_TEST_INT", raising=False)
    assert positive_int_env("NBSUPPORT_TEST_INT", "things", "for none") is None
    for text, value in ((" ", None), ("3", 3), (" 12 ", 12)):
        monkeypatch.setenv("NBSUPPORT_TEST_INT", text)
        assert positive_int_env("NBSUPPORT_TEST_INT", "things", "for none") == value
    for bad in ("0", "-1", "1.5", "two"):
        monkeypatch.setenv("NBSUPPORT_TEST_INT", bad)
        with pytest.raises(ValueError, match=r"NBSUPPORT_TEST_INT must be a positive int \(things\), got .*; unset it for none"):
            positive_int_env("NBSUPPORT_TEST_INT", "things", "for none")
