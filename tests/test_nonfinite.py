"""NaN and infinity in the inputs give the definition's result on every algorithm.

The definition only lets impulse[y-p, x-q] * response[p, q] reach out[y, x] for p <= y, q <= x: a
non-finite tap must not reach outputs left of or above it, and one NaN must not spread over a plane.
The float64 shift-add reference follows the definition exactly, NaN/inf positions included.
"""
import pytest
import torch

import dense_conv
from dense_conv import reference as ref

ALGORITHMS = ["direct", "fft"]
OPS = {"dense": (dense_conv.dense_conv2d, ref.dense_shift_add), "sparse": (dense_conv.sparse_conv2d, ref.sparse_shift_add)}


def _inputs(kind, B=3, C=2, Cr=3, Hi=9, Wi=13, Hr=4, Wr=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    response = torch.randn(B, C if kind == "sparse" else Cr, Hr, Wr, generator=g, dtype=torch.float64)
    impulse = torch.randn(B, C, Hi, Wi, generator=g, dtype=torch.float64)
    return response, impulse


def _poison(response, impulse, where):
    response, impulse = response.clone(), impulse.clone()
    if where == "nan_tap":
        response[1, 0, 2, 3] = float("nan")
    elif where == "inf_tap":
        response[2, -1, 1, 4] = float("inf")
    elif where == "inf_pixel":
        impulse[0, 1, 4, 6] = float("-inf")
    elif where == "nan_pixel":
        impulse[1, 0, 8, 12] = float("nan")
    return response, impulse


def _assert_same(actual, expected):
    actual = actual.double()
    assert torch.equal(torch.isnan(actual), torch.isnan(expected)), "NaN positions differ from the definition"
    assert torch.equal(torch.isinf(actual), torch.isinf(expected)), "infinite positions differ from the definition"
    finite = torch.isfinite(expected)
    torch.testing.assert_close(actual[finite], expected[finite], rtol=1e-10, atol=1e-10)
    infinite = torch.isinf(expected)
    assert torch.equal(actual[infinite], expected[infinite])  # same signs of infinity


@pytest.mark.parametrize("where", ["nan_tap", "inf_tap", "inf_pixel", "nan_pixel"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_forward_nonfinite_inputs(kind, algorithm, where):
    op, reference = OPS[kind]
    response, impulse = _poison(*_inputs(kind), where)
    expected = reference(response, impulse)
    assert torch.isnan(expected).any() or torch.isinf(expected).any()
    assert torch.isfinite(expected).any(), "the definition keeps finite outputs: the test must see them"
    _assert_same(op(response, impulse, algorithm=algorithm), expected)


@pytest.mark.parametrize("where", ["nan_tap", "inf_pixel", "nan_grad"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_gradients_nonfinite_inputs(kind, algorithm, where):
    op, reference = OPS[kind]
    response, impulse = _poison(*_inputs(kind, seed=1), where)
    grad_out = torch.randn_like(reference(response, impulse))
    if where == "nan_grad":
        grad_out[1, 0, 3, 7] = float("nan")
    r64, i64 = response.clone().requires_grad_(), impulse.clone().requires_grad_()
    reference(r64, i64).backward(grad_out)
    r, i = response.clone().requires_grad_(), impulse.clone().requires_grad_()
    op(r, i, algorithm=algorithm).backward(grad_out)
    _assert_same(r.grad, r64.grad)
    _assert_same(i.grad, i64.grad)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_finite_samples_keep_the_fast_result(algorithm):
    """Only the samples holding a non-finite value are recomputed: the others are bit-identical."""
    response, impulse = _inputs("dense")
    clean = dense_conv.dense_conv2d(response, impulse, algorithm=algorithm)
    response[1, 0, 2, 3] = float("nan")
    poisoned = dense_conv.dense_conv2d(response, impulse, algorithm=algorithm)
    assert torch.equal(poisoned[0], clean[0]) and torch.equal(poisoned[2], clean[2])


def test_float32_nonfinite_matches_definition():
    response, impulse = _poison(*_inputs("dense"), "nan_tap")
    expected = ref.dense_shift_add(response, impulse)
    out = dense_conv.dense_conv2d(response.float(), impulse.float(), algorithm="direct").double()
    assert torch.equal(torch.isnan(out), torch.isnan(expected))
    finite = torch.isfinite(expected)
    assert (out[finite] - expected[finite]).abs().max() <= 2e-5 * expected[finite].abs().max()
