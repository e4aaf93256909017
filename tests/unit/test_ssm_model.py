"""The S4D layer and model: convolution equals recurrence, parameter groups, the Transformer."""

import pytest
import torch

from nbsupport import ssm
from nbsupport.models.s4d import S4D, param_groups
from nbsupport.models.seq_transformer import SeqTransformer


@pytest.mark.parametrize("init", ["legs", "inv", "lin", "real", "random"])
@pytest.mark.parametrize("method", ["zoh", "bilinear"])
def test_conv_equals_recurrent(init, method):
    g = torch.Generator().manual_seed(0)
    layer = ssm.s4d_layer(6, d_state=8, init=init, method=method, generator=g).double()
    u = torch.randn(2, 41, 6, dtype=torch.float64, generator=g)
    torch.testing.assert_close(layer(u), layer(u, mode="recurrent"), rtol=1e-9, atol=1e-9)


def test_model_conv_equals_recurrent_and_shapes():
    g = torch.Generator().manual_seed(1)
    model = ssm.s4d_model(3, 5, d_model=8, n_layers=2, pool="mean", d_state=8, generator=g).double()
    u = torch.randn(2, 30, 3, dtype=torch.float64, generator=g)
    out = model(u)
    assert out.shape == (2, 5)
    torch.testing.assert_close(out, model(u, mode="recurrent"), rtol=1e-8, atol=1e-8)
    model.replace_head(3, None)
    assert model(u).shape == (2, 30, 3)


def test_layer_uses_given_ptd_init_and_kernel_paths_agree():
    init = ssm.ptd_s4d_init(16, 0.01, tries=4)
    lam = torch.tensor(init["A_init"]).to(torch.complex64)
    layer = S4D(4, A_init=lam, B_init=torch.tensor(init["B_init"]))
    torch.testing.assert_close(layer.A[0], lam)
    k_ref = ssm.ssm_kernel(layer.A, torch.view_as_complex(layer.B), torch.view_as_complex(layer.C),
                           layer.log_dt, 100, impl="reference")
    torch.testing.assert_close(layer.kernel(100), k_ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError):
        S4D(4, A_init=torch.ones(8, dtype=torch.complex64))


def test_param_groups_give_ssm_its_own_lr_and_no_decay():
    model = ssm.s4d_model(1, 2, d_model=8, n_layers=2, d_state=8)
    groups = param_groups(model, lr=1e-2, weight_decay=0.1, ssm_lr=1e-3)
    ssm_group = [g for g in groups if g.get("name") == "ssm"][0]
    assert ssm_group["lr"] == 1e-3 and ssm_group["weight_decay"] == 0.0
    ssm_ids = {id(p) for p in ssm_group["params"]}
    for block in model.blocks:
        for name in ("log_dt", "log_A_real", "A_imag", "B"):
            assert id(getattr(block.ssm, name)) in ssm_ids
    counted = sum(len(g["params"]) for g in groups)
    assert counted == len(list(model.parameters()))
    decayed = [g for g in groups if g["weight_decay"] > 0][0]
    assert all(p.ndim >= 2 for p in decayed["params"])
    frozen = ssm.s4d_model(1, 2, d_model=8, n_layers=1, d_state=8, train_A=False)
    ssm_frozen = [g for g in param_groups(frozen, 1e-2) if g.get("name") == "ssm"][0]
    assert [p.shape for p in ssm_frozen["params"]] == [torch.Size([8])]  # only log_dt trains
    torch.optim.AdamW(groups)  # valid optimizer groups


def test_seq_transformer_shapes_and_causality():
    model = SeqTransformer(2, 4, d_model=16, n_layers=1, n_heads=2, max_len=50, pool=None, causal=True).eval()
    u = torch.randn(3, 20, 2)
    out = model(u)
    assert out.shape == (3, 20, 4)
    u2 = u.clone()
    u2[:, 10:] += 1.0
    torch.testing.assert_close(model(u2)[:, :10], out[:, :10])  # the future does not leak
    model.replace_head(10, "mean")
    assert model(u).shape == (3, 10)


def test_models_import_no_theme_package():
    """Imports run one way: models use kernels and data, never a theme package."""
    import ast
    from pathlib import Path

    import nbsupport

    themes = {"ssm", "merging", "calibration", "recsys", "warmup"}
    for path in (Path(nbsupport.__file__).parent / "models").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                assert not (parts[0] == "nbsupport" and len(parts) > 1 and parts[1] in themes), (path, node.module)


def test_legs_lti_kernel_equals_matrix_exponential():
    """How to Train Your HiPPO, Theorem 2: exp(A t) B = sqrt(2n+1) e^-t P_n(2e^-t - 1)."""
    import numpy as np
    from scipy.linalg import expm

    A, B = ssm.hippo("legs", 8)
    t = np.array([0.0, 0.1, 0.7, 2.5])
    want = np.stack([expm(A * s) @ B for s in t], axis=1)
    np.testing.assert_allclose(ssm.legs_lti_kernel(8, t), want, rtol=1e-9, atol=1e-10)


def test_model_from_a_generator_ignores_the_global_rng():
    """The same generator seed gives the same model whatever the global RNG went through."""
    def build():
        return ssm.s4d_model(1, 3, d_model=8, n_layers=2, d_state=8, generator=torch.Generator().manual_seed(5))

    torch.manual_seed(0)
    a = build()
    torch.randn(1000)
    b = build()
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(p, q, msg=name)
    state = torch.get_rng_state()
    build()
    assert torch.equal(state, torch.get_rng_state())  # the global state is restored
