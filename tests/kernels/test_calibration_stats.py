"""calibration_stats paths (fast, triton) against the float64 reference.

Tolerances: float32 paths vs the float64 reference: confidence 1e-6 absolute, NLL 1e-5
relative + 1e-5 absolute, histogram counts and correctness exact (inputs chosen away from bin
edges), histogram sums 1e-4 absolute. Triton runs under ``TRITON_INTERPRET=1`` on tiny shapes,
from a copy of the module imported with the variable set (so other tests are unaffected); one
test compiles it for sm_90 without a GPU and reads the load widths off the PTX.
"""

import json
import os
import subprocess
import sys

import pytest
import torch

from nbsupport.kernels import available, choose
from nbsupport.kernels import calibration_stats as cs


def _case(n, c, scale, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    z = (torch.randn(n, c, generator=g, dtype=torch.float64) * scale).to(dtype)
    y = torch.randint(0, c, (n,), generator=g)
    return z, y


def _edge_cases():
    z = torch.zeros(6, 4)
    z[1] = torch.tensor([3.0, 3.0, -1.0, 0.0])  # tie: first index wins
    z[2] = torch.tensor([0.0, 80.0, 0.0, 0.0])  # confidence rounds to 1 in float32
    z[3] = torch.tensor([-float("inf"), 1.0, 2.0, -float("inf")])  # masked classes
    z[4] = torch.tensor([1e4, -1e4, 0.0, 5.0])  # large magnitude
    return z, torch.tensor([0, 1, 1, 2, 0, 3])


def assert_close_to_reference(got, z, y, temperature, n_bins, edges=None):
    ref = cs.reference(z.double(), y, temperature, n_bins=n_bins, edges=edges)
    torch.testing.assert_close(got.confidence.double(), ref.confidence, atol=1e-6, rtol=0)
    torch.testing.assert_close(got.nll.double(), ref.nll, atol=1e-5, rtol=1e-5)
    assert torch.equal(got.correct, ref.correct)
    assert got.histogram.dtype == torch.float64 and got.histogram.shape == ref.histogram.shape
    assert torch.equal(got.histogram[:, 0], ref.histogram[:, 0])
    torch.testing.assert_close(got.histogram[:, 1:], ref.histogram[:, 1:], atol=1e-4, rtol=0)


CASES = [(1, 1, 1.0, 1.0, 15), (37, 10, 3.0, 1.0, 15), (64, 100, 2.0, 0.5, 10), (10, 1000, 5.0, 2.5, 7)]


def test_registered_paths():
    assert set(available("calibration_stats")) == {"reference", "fast", "triton"}
    assert choose("calibration_stats", "cpu") == "fast"


@pytest.mark.parametrize("n, c, scale, t, n_bins", CASES)
def test_chunked_matches_reference(n, c, scale, t, n_bins):
    z, y = _case(n, c, scale, seed=n + c)
    assert_close_to_reference(cs.chunked(z, y, t, n_bins=n_bins, chunk_bytes=512), z, y, t, n_bins)


def test_chunked_edge_cases_and_custom_edges():
    z, y = _edge_cases()
    got = cs.chunked(z, y, 1.0, n_bins=4)
    assert_close_to_reference(got, z, y, 1.0, 4)
    assert got.correct.tolist() == [True, False, True, True, True, False]
    assert got.histogram[-1, 0] >= 2  # confidence 1 in the last bin, not a hidden one
    edges = torch.tensor([0.0, 0.3, 0.9, 1.0])
    assert_close_to_reference(cs.chunked(z, y, 1.0, edges=edges), z, y, 1.0, 3, edges=edges)


def test_reference_is_differentiable_in_temperature():
    z, y = _case(20, 5, 2.0, seed=1, dtype=torch.float64)
    t = torch.tensor(1.7, dtype=torch.float64, requires_grad=True)
    nll = cs.reference(z, y, t).nll.mean()
    nll.backward()
    want = torch.nn.functional.cross_entropy(z / t, y)
    assert float(nll.detach()) == pytest.approx(float(want), rel=1e-12)
    assert t.grad is not None and torch.isfinite(t.grad)


def test_float64_and_noncontiguous_inputs():
    z, y = _case(30, 12, 2.0, seed=3, dtype=torch.float64)
    got = cs.chunked(z.T.contiguous().T, y, 1.3)
    ref = cs.reference(z, y, 1.3)
    torch.testing.assert_close(got.nll, ref.nll, atol=1e-12, rtol=0)


@pytest.mark.parametrize("bad, match", [
    (lambda z, y: (z[:0], y[:0]), "empty"),
    (lambda z, y: (z, y + 100), "out of range"),
    (lambda z, y: (z[0], y), "2-D"),
    (lambda z, y: (z.long(), y), "floating"),
    (lambda z, y: (z, y.float()), "integer"),
])
def test_bad_input(bad, match):
    z, y = _case(8, 4, 1.0, seed=0)
    zb, yb = bad(z, y)
    for fn in (cs.reference, cs.chunked):
        with pytest.raises(ValueError, match=match):
            fn(zb, yb)
    with pytest.raises(ValueError, match="temperature"):
        cs.chunked(z, y, -1.0)


@pytest.fixture(scope="module")
def interp(interpreted):
    return interpreted("nbsupport.kernels.calibration_stats_triton")


@pytest.mark.parametrize("n, c, scale, t, n_bins", CASES[:3])
def test_triton_interpreted_matches_reference(interp, n, c, scale, t, n_bins):
    z, y = _case(n, c, scale, seed=n + c)
    got = interp.triton_calibration_stats(z, y, t, n_bins=n_bins, block_rows=16, block_cols=32)
    assert_close_to_reference(got, z, y, t, n_bins)


def test_triton_interpreted_edge_cases_and_determinism(interp):
    z, y = _edge_cases()
    got = interp.triton_calibration_stats(z, y, 1.0, n_bins=4, block_rows=4, block_cols=2)
    assert_close_to_reference(got, z, y, 1.0, 4)
    again = interp.triton_calibration_stats(z, y, 1.0, n_bins=4, block_rows=4, block_cols=2)
    assert torch.equal(got.histogram, again.histogram) and torch.equal(got.nll, again.nll)


def test_vector_width():
    pytest.importorskip("triton")
    from nbsupport.kernels.calibration_stats_triton import vector_width

    # (C, row stride, bytes per element) -> elements per load, at most 16 bytes
    cases = {(100, 100, 4): 4, (10, 10, 4): 2, (7, 7, 4): 1, (12, 14, 4): 2, (16, 16, 2): 8, (16, 16, 8): 2}
    assert {k: vector_width(*k) for k in cases} == cases


@pytest.mark.parametrize("c, width, dtype", [
    (12, 12, torch.float32),  # 4-wide loads
    (10, 10, torch.float32),  # 2-wide
    (7, 7, torch.float32),  # scalar
    (12, 14, torch.float32),  # a column slice: the row stride (14) limits loads to 2 wide
    (16, 16, torch.float16),  # 8-wide (16 bytes)
])
def test_triton_interpreted_load_widths_and_block_loop(interp, c, width, dtype):
    """Every load width, and programs that each walk several row blocks (max_programs=3)."""
    z, y = _case(50, width, 3.0, seed=c + width, dtype=dtype)
    z, y = z[:, :c], torch.clamp(y, max=c - 1)
    got = interp.triton_calibration_stats(z, y, 0.7, n_bins=6, block_rows=4, block_cols=8, max_programs=3)
    assert_close_to_reference(got, z, y, 0.7, 6)


SM90_LOAD_WIDTHS = """
import json, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from nbsupport.kernels.calibration_stats_triton import _calibration_stats_kernel, vector_width

ptr = {"X": "*fp32", "Y": "*i64", "EDGES": "*fp32", "CONF": "*fp32", "CORRECT": "*i8", "NLL": "*fp32", "PARTIAL": "*fp32"}
ints = {"n": "i32", "C_div": "i32", "stride_div": "i32", "inv_t": "fp32", "n_bins": "i32", "n_blocks": "i32"}
wide = {}
for c in map(int, sys.argv[1:]):
    consts = {"VEC": vector_width(c, c, 4), "BLOCK_R": 16, "BLOCK_C": 128, "NB": 16}
    src = ASTSource(fn=_calibration_stats_kernel, signature={**ptr, **ints, **dict.fromkeys(consts, "constexpr")},
                    constexprs=consts, attrs={(i,): [["tt.divisibility", 16]] for i in range(len(ptr))})
    ptx = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 8}).asm["ptx"]
    wide[c] = "ld.global.v4" in ptx
print(json.dumps(wide))
"""


def test_triton_loads_are_16_bytes_wide_when_rows_allow():
    """The VEC trick reaches the compiler: 4-wide float32 loads for C = 100, none for C = 7.

    Static (no GPU, no timing): the kernel is compiled ahead of time for an H100 (sm_90) and its
    PTX read; the interpreter cannot show load widths. In a subprocess, because an interpreted
    run patches ``triton.language`` for the rest of the process.
    """
    triton = pytest.importorskip("triton")
    if tuple(int(p) for p in triton.__version__.split(".")[:2]) < (3, 3):
        pytest.skip("the ASTSource arguments used here came in Triton 3.3")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", SM90_LOAD_WIDTHS, "100", "7"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"100": True, "7": False}


@pytest.mark.gpu
def test_triton_cuda_matches_reference_and_is_deterministic():
    from nbsupport.kernels.calibration_stats_triton import triton_calibration_stats

    z, y = _case(100_000, 1000, 4.0, seed=7)
    z, y = z.cuda(), y.cuda()
    got = triton_calibration_stats(z, y, 1.5)
    ref = cs.reference(z.double(), y, 1.5)
    torch.testing.assert_close(got.confidence.double(), ref.confidence, atol=1e-6, rtol=0)
    torch.testing.assert_close(got.nll.double(), ref.nll, atol=1e-4, rtol=1e-5)
    assert (got.correct == ref.correct).all()
    assert (got.histogram[:, 0] - ref.histogram[:, 0]).abs().max() <= 2  # ulp-level bin flips
    again = triton_calibration_stats(z, y, 1.5)
    assert torch.equal(got.histogram, again.histogram)
