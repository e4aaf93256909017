"""nbsupport.exercises.answer: verdicts against the tolerance rule |v - t| <= max(tol, rtol |t|)."""

import numpy as np
import pytest
import torch

from nbsupport.exercises import answer


def verdict(capsys, *args, **kwargs):
    assert answer(*args, **kwargs) is None
    out = capsys.readouterr()
    assert out.err == ""
    return out.out.strip()


def test_within_relative_tolerance(capsys):
    text = verdict(capsys, "ece", 0.052, 0.05)  # 4 % off, default rtol 10 %
    assert text.startswith("✓ ece") and "0.05" in text


def test_miss_says_direction_size_and_why(capsys):
    text = verdict(capsys, "ece", 0.2, 0.05, explain="Temperature scaling shrinks confidence.")
    assert text.startswith("✗ ece") and "too high by 0.15" in text and "4x too high" in text
    assert text.endswith("Temperature scaling shrinks confidence.")
    assert "too low" in verdict(capsys, "ece", 0.01, 0.05)


def test_absolute_tolerance_wins_when_larger(capsys):
    assert verdict(capsys, "acc", 0.0, 0.001, tol=0.01).startswith("✓")
    assert verdict(capsys, "acc", 0.0, 0.001).startswith("✗")  # rtol alone: ±1e-4
    # the boundary itself counts as a match
    assert verdict(capsys, "x", 1.5, 1.0, tol=0.5, rtol=0).startswith("✓")


def test_accepts_numpy_and_torch_scalars(capsys):
    assert verdict(capsys, "t", np.float32(1.49), torch.tensor(1.5)).startswith("✓")
    assert verdict(capsys, "t", 1.5, np.array([1.5])).startswith("✓")


def test_unanswered_is_not_judged(capsys):
    text = verdict(capsys, "ece", None, 0.05)
    assert "in place of None" in text and "✓" not in text and "✗" not in text


def test_exact_answers_for_strings_and_bools(capsys):
    assert verdict(capsys, "which", " Cosine ", "cosine").startswith("✓")
    assert verdict(capsys, "which", "wsd", "cosine").startswith("✗")
    assert verdict(capsys, "drops", True, True).startswith("✓")


@pytest.mark.parametrize("value, truth, error", [
    ("0.1", 0.1, TypeError), (0.1, float("nan"), ValueError), (torch.ones(3), 1.0, ValueError),
])
def test_bad_input_names_the_fix(value, truth, error):
    with pytest.raises(error, match="answer\\('q'\\)"):
        answer("q", value, truth)
    with pytest.raises(ValueError, match="tol"):
        answer("q", 1.0, 1.0, tol=-1)
