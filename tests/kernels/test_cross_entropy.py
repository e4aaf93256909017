"""Every path of cross-entropy with z-loss against the float64 reference."""

import pytest
import torch

from nbsupport import kernels
from nbsupport.kernels.cross_entropy import chunked, cross_entropy, reference

triton_ok = kernels.triton_available() and (torch.cuda.is_available() or kernels.interpreting())


def brute_force(logits, target, z, ignore_index=-100):
    """Row by row from the definition: CE + z·log²Z, mean over kept rows."""
    total, kept = 0.0, 0
    for row, t in zip(logits.tolist(), target.tolist()):
        if t == ignore_index:
            continue
        m = max(row)
        lse = m + torch.tensor([v - m for v in row], dtype=torch.float64).exp().sum().log().item()
        total += lse - row[t] + z * lse * lse
        kept += 1
    return total / max(kept, 1)


def inputs(n, v, scale=3.0, seed=0, dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(n, v, generator=g, dtype=torch.float64) * scale).to(device=device, dtype=dtype)
    t = torch.randint(0, v, (n,), generator=g).to(device)
    return x, t


@pytest.mark.parametrize("z", [0.0, 1e-4, 0.3])
def test_reference_matches_definition(z):
    x, t = inputs(6, 11, seed=1)
    t[2] = -100
    loss, lse = reference(x, t, z_loss=z)
    assert loss.item() == pytest.approx(brute_force(x, t, z), rel=1e-12)
    assert torch.allclose(lse, torch.logsumexp(x, -1), rtol=0, atol=1e-12)


def test_reference_gradient_formula():
    x, t = inputs(5, 9, seed=2)
    x.requires_grad_(True)
    z = 0.05
    loss, lse = reference(x, t, z_loss=z)
    (g,) = torch.autograd.grad(loss, x)
    p = torch.softmax(x.detach(), -1)
    expected = (p * (1 + 2 * z * lse)[:, None] - torch.nn.functional.one_hot(t, 9)) / 5
    assert torch.allclose(g, expected, atol=1e-12)


@pytest.mark.parametrize("z", [0.0, 1e-3, 0.5])
@pytest.mark.parametrize("chunk", [1, 4, 1024])
def test_fast_path_matches_reference(z, chunk):
    x, t = inputs(13, 50, scale=10.0, seed=3)
    t[[0, 7]] = -100
    a = x.clone().requires_grad_(True)
    b = x.clone().requires_grad_(True)
    la, za = reference(a, t, z_loss=z)
    lb, zb = chunked(b, t, z_loss=z, chunk=chunk)
    (2.5 * la).backward()
    (2.5 * lb).backward()
    assert torch.allclose(la, lb, rtol=1e-12, atol=1e-12)
    assert torch.allclose(za, zb, rtol=1e-12, atol=1e-12)
    assert torch.allclose(a.grad, b.grad, rtol=1e-10, atol=1e-13)
    assert torch.equal(x, a.detach())  # inputs untouched


def test_fast_path_edge_cases():
    # all rows ignored: loss 0, zero gradient; float32 input gives float32 gradient
    x = torch.randn(3, 5, requires_grad=True)
    loss, _ = chunked(x, torch.full((3,), -100), z_loss=1e-4)
    loss.backward()
    assert loss.item() == 0.0 and x.grad.abs().max() == 0 and x.grad.dtype == torch.float32
    # huge logits stay finite
    big = torch.tensor([[1e4, -1e4, 0.0]], dtype=torch.float64, requires_grad=True)
    lb, _ = chunked(big, torch.tensor([1]), z_loss=1e-4)
    lr, _ = reference(big, torch.tensor([1]), z_loss=1e-4)
    assert torch.isfinite(lb) and lb.item() == pytest.approx(lr.item(), rel=1e-12)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="logits must be"):
        reference(torch.zeros(2, 3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="target must be"):
        chunked(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="z_loss"):
        reference(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), z_loss=-1)


@pytest.mark.skipif(not triton_ok, reason="needs triton (CUDA or TRITON_INTERPRET=1)")
@pytest.mark.parametrize("v", [1, 7, 33])  # 33 > one block only when BLOCK is small: see test below
@pytest.mark.parametrize("z", [0.0, 1e-2])
def test_triton_matches_reference(v, z):
    from nbsupport.kernels.cross_entropy_triton import triton_cross_entropy

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    x, t = inputs(4, v, seed=v, dtype=torch.float32, device=dev)
    t[1] = -100
    a = x.double().requires_grad_(True)
    b = x.clone().requires_grad_(True)
    la, za = reference(a, t, z_loss=z)
    lb, zb = triton_cross_entropy(b, t, z_loss=z)
    la.backward()
    lb.backward()
    assert lb.item() == pytest.approx(la.item(), rel=1e-5, abs=1e-6)
    assert torch.allclose(zb.double(), za, rtol=1e-5, atol=1e-5)
    assert torch.allclose(b.grad.double(), a.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(not triton_ok, reason="needs triton (CUDA or TRITON_INTERPRET=1)")
def test_triton_vocabulary_in_several_blocks(monkeypatch):
    """V not a multiple of the block and spanning several blocks, with -inf lanes."""
    from nbsupport.kernels import cross_entropy_triton as ct

    monkeypatch.setattr(ct, "_block", lambda v: 8)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    x, t = inputs(3, 29, scale=20.0, seed=5, dtype=torch.float32, device=dev)
    x[0, :10] = float("-inf")
    t[0] = 15
    a = x.double().requires_grad_(True)
    b = x.clone().requires_grad_(True)
    la, _ = reference(a, t, z_loss=1e-3)
    lb, _ = ct.triton_cross_entropy(b, t, z_loss=1e-3)
    la.backward()
    lb.backward()
    assert lb.item() == pytest.approx(la.item(), rel=1e-5)
    assert torch.allclose(b.grad.double(), torch.nan_to_num(a.grad), rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [(512, 32_000), (100, 50_257)])
def test_triton_on_cuda_large(shape):
    from nbsupport.kernels.cross_entropy_triton import triton_cross_entropy

    x, t = inputs(*shape, dtype=torch.float32, device="cuda")
    a = x.double().requires_grad_(True)
    b = x.clone().requires_grad_(True)
    la, _ = reference(a, t, z_loss=1e-4)
    lb, _ = triton_cross_entropy(b, t, z_loss=1e-4)
    la.backward()
    lb.backward()
    assert lb.item() == pytest.approx(la.item(), rel=1e-5)
    assert torch.allclose(b.grad.double(), a.grad, rtol=1e-3, atol=1e-7)
    # deterministic: a second run gives identical bits
    b2 = x.clone().requires_grad_(True)
    lb2, _ = triton_cross_entropy(b2, t, z_loss=1e-4)
    lb2.backward()
    assert torch.equal(lb, lb2) and torch.equal(b.grad, b2.grad)


def test_resolver_chooses_and_validates(monkeypatch):
    monkeypatch.delenv("NBSUPPORT_IMPL", raising=False)
    assert kernels.choose("cross_entropy", "cpu") == "fast"
    assert kernels.choose("cross_entropy", "cpu", "reference") == "reference"
    monkeypatch.setenv("NBSUPPORT_IMPL", "reference")
    assert kernels.choose("cross_entropy", "cpu") == "reference"
    assert kernels.choose("cross_entropy", "cpu", "fast") == "fast"  # argument wins
    monkeypatch.setenv("NBSUPPORT_IMPL", "fastest")
    with pytest.raises(ValueError, match=r"unknown kernel impl 'fastest' \(\$NBSUPPORT_IMPL\)"):
        kernels.choose("cross_entropy", "cpu")
    with pytest.raises(KeyError, match="unknown op"):
        kernels.resolve("no_such_op", "cpu")
    assert "cross_entropy" in kernels.ops()


VALID = "valid values are 'reference', 'triton', 'fast'"


@pytest.mark.parametrize("name", ["compile", "Fast", "fastest"])
def test_unknown_impl_names_the_valid_values(monkeypatch, name):
    """The old name ``compile`` (and any other unknown name) fails with one error listing the valid ones."""
    monkeypatch.delenv("NBSUPPORT_IMPL", raising=False)
    with pytest.raises(ValueError, match=f"unknown kernel impl '{name}' \\(the impl argument\\); {VALID}"):
        kernels.choose("cross_entropy", "cpu", name)
    with pytest.raises(ValueError, match=VALID):
        cross_entropy(*inputs(2, 3), impl=name)
    monkeypatch.setenv("NBSUPPORT_IMPL", name)
    with pytest.raises(ValueError, match=f"unknown kernel impl '{name}' \\(\\$NBSUPPORT_IMPL\\); {VALID}"):
        kernels.choose("cross_entropy", "cpu")
    with pytest.raises(ValueError, match=VALID):
        kernels.register("cross_entropy", name, "nbsupport.kernels.cross_entropy:chunked")


def test_triton_on_cpu_without_interpreter_is_refused(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(kernels, "triton_available", lambda: True)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        kernels.choose("cross_entropy", "cpu", "triton")


def test_public_function_goes_through_resolver():
    x, t = inputs(4, 6)
    assert torch.allclose(cross_entropy(x, t, 1e-3, impl="reference")[0], cross_entropy(x, t, 1e-3)[0],
                          rtol=1e-12)
