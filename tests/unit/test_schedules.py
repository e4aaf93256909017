"""nbsupport.schedules against independently computed published definitions.

Each schedule is compared at every step of a 10 000-step run (tolerance 1e-12) with
(a) the formula written out here, step by step in plain Python (definitions in docs/bibliography.md), and
(b) the library that publishes it (transformers' LambdaLR factories, torch's schedulers),
called directly.
"""

from __future__ import annotations

import importlib.util
import math
import warnings

import numpy as np
import pytest
import torch

from nbsupport import schedules as S

T = 10_000
STEPS = np.arange(T + 1)
TOL = 1e-12


def _lrs(scheduler_factory, n=T + 1, lr=1.0):
    """The LR a torch scheduler gives at steps 0..n-1 (base LR ``lr``)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = scheduler_factory(opt)
        out = []
        for _ in range(n):
            out.append(opt.param_groups[0]["lr"])
            sched.step()  # no optimizer step needed to read the LR (warning silenced)
    return np.array(out)


def _close(a, b, tol=TOL):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape
    err = np.max(np.abs(a - b))
    assert err <= tol, f"max abs error {err:.3g} > {tol}"


# ---------------------------------------------------------------- formulas written out


def f_warm(t, W):
    return t / max(1, W)


def f_linear(t, W, total):
    return f_warm(t, W) if t < W else max(0.0, (total - t) / max(1, total - W))


def f_cosine(t, W, total, m=0.0):
    if t < W:
        return f_warm(t, W)
    p = (t - W) / max(1, total - W)
    return m + (1 - m) * 0.5 * (1 + math.cos(math.pi * p))


def f_inverse_sqrt(t, W, tau):
    return f_warm(t, W) if t < W else 1 / math.sqrt((t + tau - W) / tau)


def f_wsd(t, W, total, D, shape, m, warm_shape="linear", half_life=None):
    stable = total - W - D
    if t < W:
        x = t / max(1, W)
        g = {"linear": x, "cosine": 0.5 * (1 - math.cos(math.pi * x)), "1-sqrt": 1 - math.sqrt(1 - x)}[warm_shape]
        return m + (1 - m) * g
    if t < W + stable:
        return 1.0
    q = min((t - W - stable) / max(1, D), 1.0)
    h = {"linear": 1 - q, "cosine": 0.5 * (1 + math.cos(math.pi * q)), "1-sqrt": 1 - math.sqrt(q)}.get(shape)
    if shape == "exponential":
        h = 0.5 ** (q * D / half_life)
    return m + (1 - m) * h


def f_sgdr(t, T0, mult, m):
    t_cur, t_i = t, T0
    while t_cur >= t_i:
        t_cur -= t_i
        t_i *= mult
    return m + (1 - m) * 0.5 * (1 + math.cos(math.pi * t_cur / t_i))


# ---------------------------------------------------------------- exact matches


@pytest.mark.parametrize("W", [0, 1, 500])
def test_constant_matches_formula_and_transformers(W):
    from transformers import get_constant_schedule_with_warmup

    s = S.constant(W)
    _close(s(STEPS), [f_warm(t, W) if t < W else 1.0 for t in STEPS])
    _close(s(STEPS), _lrs(lambda o: get_constant_schedule_with_warmup(o, W)))


@pytest.mark.parametrize("W", [0, 100, 2500])
def test_linear_matches_formula_and_transformers(W):
    from transformers import get_linear_schedule_with_warmup

    s = S.linear(W, T)
    _close(s(STEPS), [f_linear(t, W, T) for t in STEPS])
    _close(s(STEPS), _lrs(lambda o: get_linear_schedule_with_warmup(o, W, T)))


@pytest.mark.parametrize("W", [0, 100, 2500])
def test_cosine_matches_formula_and_transformers(W):
    from transformers import get_cosine_schedule_with_warmup

    s = S.cosine(W, T)
    _close(s(STEPS), [f_cosine(t, W, T) for t in STEPS])
    _close(s(STEPS), _lrs(lambda o: get_cosine_schedule_with_warmup(o, W, T)))


@pytest.mark.parametrize("m", [0.1, 0.5])
def test_cosine_min_ratio_matches_transformers(m):
    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    s = S.cosine(200, T, min_ratio=m)
    _close(s(STEPS), [f_cosine(t, 200, T, m) for t in STEPS])
    _close(s(STEPS), _lrs(lambda o: get_cosine_with_min_lr_schedule_with_warmup(o, 200, T, min_lr_rate=m)))


def test_cosine_without_warmup_matches_torch_cosine_annealing():
    m = 0.1
    s = S.cosine(0, T, min_ratio=m)
    # torch's CosineAnnealingLR steps a recursive form; its drift stays below 1e-12 here
    _close(s(STEPS), _lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=T, eta_min=m)))


def test_cosine_holds_min_after_total():
    s = S.cosine(10, 100, min_ratio=0.2)
    _close(s(np.arange(100, 300)), np.full(200, 0.2))


@pytest.mark.parametrize(("W", "tau"), [(0, None), (400, None), (400, 1000)])
def test_inverse_sqrt_matches_formula_and_transformers(W, tau):
    from transformers import get_inverse_sqrt_schedule

    s = S.inverse_sqrt(W, tau)
    expected_tau = (W or 10_000) if tau is None else tau
    assert s.params["timescale"] == expected_tau
    _close(s(STEPS), [f_inverse_sqrt(t, W, expected_tau) for t in STEPS])
    _close(s(STEPS), _lrs(lambda o: get_inverse_sqrt_schedule(o, W, timescale=tau)))


@pytest.mark.parametrize("shape", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize("warm_shape", ["linear", "cosine", "1-sqrt"])
@pytest.mark.parametrize("m", [0.0, 0.1])
def test_wsd_matches_formula_and_transformers(shape, warm_shape, m):
    from transformers import get_wsd_schedule

    W, D = 300, 1000
    s = S.wsd(W, T, decay=D, shape=shape, min_ratio=m, warmup_shape=warm_shape)
    _close(s(STEPS), [f_wsd(t, W, T, D, shape, m, warm_shape) for t in STEPS])
    ref = _lrs(lambda o: get_wsd_schedule(o, W, D, num_training_steps=T, warmup_type=warm_shape,
                                          decay_type=shape, min_lr_ratio=m))
    _close(s(STEPS), ref)


def test_wsd_decay_fraction_equals_steps():
    a = S.wsd(100, T, decay=0.1)
    b = S.wsd(100, T, decay=1000)
    assert a.params["decay"] == 1000
    _close(a(STEPS), b(STEPS), 0.0)


def test_wsd_exponential_matches_minicpm_formula():
    W, D, hl = 100, 2000, 250.0
    s = S.wsd(W, T, decay=D, shape="exponential", min_ratio=0.05, half_life=hl)
    _close(s(STEPS), [f_wsd(t, W, T, D, "exponential", 0.05, half_life=hl) for t in STEPS])
    # the decay halves every half_life steps (above the floor m)
    start = T - D
    assert abs((s(start + 250) - 0.05) / (s(start) - 0.05) - 0.5) < 1e-12
    assert s(T + 50) == s(T)  # holds the value the decay ended at
    assert S.wsd(W, T, decay=D, shape="exponential").params["half_life"] == D / 5


@pytest.mark.parametrize(("T0", "mult", "m"), [(1000, 1, 0.0), (500, 2, 0.1), (300, 3, 0.05)])
def test_restarts_matches_formula_and_torch(T0, mult, m):
    s = S.restarts(T0, mult=mult, min_ratio=m)
    _close(s(STEPS), [f_sgdr(t, T0, mult, m) for t in STEPS])
    ref = _lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=T0, T_mult=mult, eta_min=m))
    _close(s(STEPS), ref)


def test_restarts_warmup_shifts_the_clock():
    s = S.restarts(100, warmup=20)
    _close(s(np.arange(20)), np.arange(20) / 20)
    _close(s(np.arange(20, 500)), S.restarts(100)(np.arange(0, 480)))


def test_power_scheduler_formula():
    a, b, lr_max, c, W, total, D = 4.6, -0.51, 0.02, 4096.0, 100, T, 1000
    s = S.power(W, total, a=a, b=b, lr_max=lr_max, tokens_per_step=c, decay=D, shape="linear")

    def curve(t):
        return min(1.0, a * (c * t) ** b / lr_max)

    def f(t):
        if t < W:
            return t / W * curve(W)
        if t < total - D:
            return curve(t)
        return curve(total - D) * (1 - min((t - total + D) / D, 1.0))

    _close(s(STEPS), [f(t) for t in STEPS])
    # with a large a the power law is capped at lr_max: multiplier 1 after warmup
    flat = S.power(10, 1000, a=1e9, lr_max=0.02)
    _close(flat(np.arange(10, 1000)), np.ones(990), 0.0)


def test_power_law_part_is_a_power_law():
    s = S.power(0, 10**6, a=0.5, b=-0.5, lr_max=1.0, tokens_per_step=1.0)
    t = np.array([10_000, 40_000, 160_000])
    slope = np.diff(np.log(s(t))) / np.diff(np.log(t))
    _close(slope, [-0.5, -0.5])


def test_rewarm_formula_and_no_rewarm():
    first = S.cosine(100, 1000, min_ratio=0.1)
    r = S.rewarm(first, warmup=50, total=2000, peak=0.8)
    assert r.params["start"] == pytest.approx(0.1) and r.params["end"] == pytest.approx(0.1)

    def f(t):
        if t < 50:
            return 0.1 + (0.8 - 0.1) * t / 50
        return 0.1 + (0.8 - 0.1) * 0.5 * (1 + math.cos(math.pi * (t - 50) / 1950))

    steps = np.arange(2001)
    _close(r(steps), [f(t) for t in steps])
    none = S.rewarm(0.1, 0, 500, peak=0.1)
    _close(none(np.arange(600)), np.full(600, 0.1))
    jump = S.rewarm(0.1, 0, 500, peak=1.0)
    assert jump(0) == 1.0


def test_rewarm_continues_where_the_first_run_ended():
    first = S.linear(10, 100, min_ratio=0.05)
    r = S.rewarm(first, 20, 200, peak=0.5)
    assert r(0) == pytest.approx(first(100))


# ---------------------------------------------------------------- interface


def test_scalar_and_array_and_tensor_inputs():
    s = S.cosine(10, 100)
    assert isinstance(s(5), float)
    assert isinstance(s(np.int64(5)), float)
    arr = s([0, 5, 50])
    assert isinstance(arr, np.ndarray) and arr.dtype == np.float64 and arr.shape == (3,)
    _close(s(torch.arange(3)), s(np.arange(3)), 0.0)
    assert s(np.arange(6).reshape(2, 3)).shape == (2, 3)


def test_lambda_lr_drives_optimizer():
    s = S.wsd(5, 50, decay=0.2, shape="linear")
    got = _lrs(lambda o: s.lambda_lr(o), n=60, lr=3e-3)
    _close(got, 3e-3 * s(np.arange(60)), 1e-15)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    sched = s.lambda_lr(opt)
    assert isinstance(sched, torch.optim.lr_scheduler.LambdaLR)
    sched.load_state_dict(sched.state_dict())


def test_repr_reads_like_the_call():
    assert repr(S.cosine(100, 1000, min_ratio=0.1)) == "cosine(warmup=100, total=1000, min_ratio=0.1)"
    assert repr(S.wsd(10, 1000, decay=0.1, shape="1-sqrt")) == (
        "wsd(warmup=10, total=1000, decay=100, shape='1-sqrt', min_ratio=0)")
    assert repr(S.constant(5)) == "constant(warmup=5)"
    assert repr(S.restarts(100, 2)) == "restarts(period=100, mult=2, min_ratio=0)"
    assert repr(S.inverse_sqrt(10)) == "inverse_sqrt(warmup=10, timescale=10)"
    assert repr(S.rewarm(0.1, 5, 50)).startswith("rewarm(start=0.1, warmup=5, total=50, peak=1")
    assert repr(S.power(10, 100)).startswith("power(warmup=10, total=100, a=4.6, b=-0.51")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: S.cosine(2000, 1000), "longer than the total"),
        (lambda: S.linear(11, 10), "longer than the total"),
        (lambda: S.wsd(600, 1000, decay=500), "longer than the total"),
        (lambda: S.power(600, 1000, decay=0.5), "longer than the total"),
        (lambda: S.rewarm(0.1, 20, 10), "longer than the total"),
        (lambda: S.cosine(-1, 100), "warmup must be >= 0"),
        (lambda: S.constant(-5), "warmup must be >= 0"),
        (lambda: S.cosine(10, 0), "total must be >= 1"),
        (lambda: S.cosine(10, 100, min_ratio=1.5), r"min_ratio must be a number in \[0, 1\]"),
        (lambda: S.cosine(10, 100, min_ratio=-0.1), r"min_ratio must be a number in \[0, 1\]"),
        (lambda: S.wsd(10, 100, min_ratio=2), r"min_ratio must be a number in \[0, 1\]"),
        (lambda: S.restarts(100, min_ratio=-1), r"min_ratio must be a number in \[0, 1\]"),
        (lambda: S.wsd(10, 100, decay=1.5), r"fraction of total and must be in \[0, 1\]"),
        (lambda: S.wsd(10, 100, decay=200), "decay must be between 0 and total"),
        (lambda: S.wsd(10, 100, shape="step"), "unknown decay shape 'step'"),
        (lambda: S.wsd(10, 100, warmup_shape="exponential"), "unknown warmup shape"),
        (lambda: S.restarts(0), "period must be >= 1"),
        (lambda: S.power(10, 100, b=0.5), "exponent b must be negative"),
        (lambda: S.rewarm(0.5, 10, 100, peak=1.0, end=2.0), r"end must be in \[0, peak"),
        (lambda: S.rewarm(-0.1, 10, 100), "start must be a multiplier >= 0"),
        (lambda: S.rewarm(S.inverse_sqrt(10), 10, 100), "open-ended"),
    ],
)
def test_validation_errors(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_type_errors_and_negative_steps():
    with pytest.raises(TypeError, match="int number of steps"):
        S.cosine(10.5, 100)
    with pytest.raises(TypeError, match="int number of steps"):
        S.cosine(True, 100)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        S.cosine(10, 100)(-1)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        S.constant()(np.array([3, -2]))


def test_every_schedule_is_bounded_and_finite():
    built = [S.constant(10), S.linear(10, 500), S.cosine(10, 500, 0.1), S.inverse_sqrt(10),
             S.wsd(10, 500, 0.2, "exponential", 0.01), S.power(10, 500, tokens_per_step=1e4, decay=0.1),
             S.rewarm(0.1, 10, 500, peak=2.0), S.restarts(100, 2, 0.1, warmup=5)]
    steps = np.arange(2000)
    for s in built:
        v = s(steps)
        assert np.isfinite(v).all() and (v >= 0).all(), s
        assert v.max() <= max(1.0, s.params.get("peak", 1.0)) + 1e-12, s


# ---------------------------------------------------------------- timm and optax


def _timm_lrs(make, n):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sch = make(opt)
    out = []
    for t in range(n):
        sch.step_update(num_updates=t)
        out.append(opt.param_groups[0]["lr"])
    return np.array(out)


@pytest.mark.parametrize("shape", ["linear", "cosine", "1-sqrt"])
def test_wsd_and_cosine_match_timm(shape):
    if importlib.util.find_spec("timm") is None:
        pytest.skip("timm is not installed")
    from nbsupport.warmup.libraries import timm_schedulers

    timm = timm_schedulers()
    W, T, D, m = 50, 2000, 200, 0.01
    theirs = _timm_lrs(lambda o: timm.WSDLRScheduler(o, t_initial=T - W, decay_t=D, lr_min=m, decay_fn=shape,
                                                     warmup_t=W, warmup_lr_init=m, t_in_epochs=False), T + 1)
    np.testing.assert_allclose(S.wsd(W, T, decay=D, shape=shape, min_ratio=m)(np.arange(T + 1)), theirs,
                               rtol=0, atol=1e-12)
    cos = _timm_lrs(lambda o: timm.CosineLRScheduler(o, t_initial=T - W, warmup_t=W, warmup_prefix=True, lr_min=0.0,
                                                     warmup_lr_init=0.0, t_in_epochs=False), T + 1)
    np.testing.assert_allclose(S.cosine(W, T)(np.arange(T + 1)), cos, rtol=0, atol=1e-12)


def test_cosine_matches_optax():
    optax = pytest.importorskip("optax")
    W, T = 100, 2000
    theirs = np.asarray(optax.warmup_cosine_decay_schedule(0.0, 1.0, W, T, 0.0)(np.arange(T + 1)), dtype=np.float64)
    np.testing.assert_allclose(S.cosine(W, T)(np.arange(T + 1)), theirs, rtol=0, atol=1e-6)  # optax runs in float32
