"""dense_conv2d / sparse_conv2d against the float64 references, gradients, opcheck, compile, bad input."""
import os
import shutil

import pytest
import torch

import dense_conv
from dense_conv import reference as ref
from testing import DENSE_SHAPES, DEVICES, SPARSE_SHAPES, assert_close_scaled, make_inputs

OPS = {"dense": (dense_conv.dense_conv2d, ref.dense_shift_add, DENSE_SHAPES),
       "sparse": (dense_conv.sparse_conv2d, ref.sparse_shift_add, SPARSE_SHAPES)}


def _cases(kind):
    return [(kind, shape) for shape in OPS[kind][2]]


ALL_CASES = _cases("dense") + _cases("sparse")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind,shape", ALL_CASES)
def test_forward_matches_reference(kind, shape, dtype, device):
    op, reference, _ = OPS[kind]
    response, impulse = make_inputs(shape, sparse=kind == "sparse", seed=hash(shape) % 1000)
    expected = reference(response, impulse)
    out = op(response.to(device, dtype), impulse.to(device, dtype))
    assert out.dtype == dtype and out.device.type == device
    assert_close_scaled(out, expected, dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind,shape", ALL_CASES)
def test_gradients_match_reference(kind, shape, dtype, device):
    op, reference, _ = OPS[kind]
    response, impulse = make_inputs(shape, sparse=kind == "sparse", seed=7)
    grad_out = torch.randn_like(reference(response, impulse))
    r64, i64 = response.clone().requires_grad_(), impulse.clone().requires_grad_()
    reference(r64, i64).backward(grad_out)
    r, i = response.to(device, dtype).requires_grad_(), impulse.to(device, dtype).requires_grad_()
    op(r, i).backward(grad_out.to(device, dtype))
    assert_close_scaled(r.grad, r64.grad, dtype)
    assert_close_scaled(i.grad, i64.grad, dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_non_contiguous_inputs(kind, device):
    op, reference, _ = OPS[kind]
    response, impulse = make_inputs((2, 3, 3, 9, 12, 4, 3), sparse=kind == "sparse", device=device)
    # transposed H/W views, and a strided slice of the batch
    r_nc = response.transpose(2, 3).contiguous().transpose(2, 3)
    i_nc = torch.stack([impulse, impulse], dim=1)[:, 0]
    assert not r_nc.is_contiguous() and not i_nc.is_contiguous()
    torch.testing.assert_close(op(r_nc, i_nc), op(response, impulse), rtol=0, atol=0)
    assert_close_scaled(op(r_nc, i_nc), reference(response.cpu(), impulse.cpu()), torch.float64)
    r_nc.requires_grad_(), i_nc.requires_grad_()
    op(r_nc, i_nc).sum().backward()
    r, i = response.clone().requires_grad_(), impulse.clone().requires_grad_()
    op(r, i).sum().backward()
    torch.testing.assert_close(r_nc.grad, r.grad, rtol=0, atol=0)
    torch.testing.assert_close(i_nc.grad, i.grad, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("shape", [(2, 2, 3, 5, 6, 2, 3), (1, 1, 2, 3, 4, 5, 6), (2, 2, 1, 4, 3, 1, 1)])
def test_gradcheck_float64(kind, shape):
    op = OPS[kind][0]
    for device in DEVICES:
        response, impulse = make_inputs(shape, sparse=kind == "sparse", device=device, requires_grad=True)
        assert torch.autograd.gradcheck(op, (response, impulse))
        assert torch.autograd.gradgradcheck(op, (response, impulse))


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_gradcheck_one_input(kind):
    op = OPS[kind][0]
    response, impulse = make_inputs((2, 2, 2, 5, 7, 3, 2), sparse=kind == "sparse")
    assert torch.autograd.gradcheck(lambda r: op(r, impulse), (response.requires_grad_(),))
    assert torch.autograd.gradcheck(lambda i: op(response.detach(), i), (impulse.requires_grad_(),))


def _opcheck_samples(kind, device):
    sparse = kind == "sparse"
    samples = []
    for shape in [(2, 3, 2, 6, 7, 3, 2), (1, 1, 1, 4, 4, 6, 5)]:
        for rg in (False, True):
            samples.append(make_inputs(shape, sparse=sparse, device=device, dtype=torch.float32, requires_grad=rg))
    return samples


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_opcheck(kind, device):
    forward = getattr(torch.ops.dense_conv, f"{kind}_conv2d")
    grad_impulse = getattr(torch.ops.dense_conv, f"{kind}_conv2d_grad_impulse")
    grad_response = getattr(torch.ops.dense_conv, f"{kind}_conv2d_grad_response")
    for response, impulse in _opcheck_samples(kind, device):
        torch.library.opcheck(forward, (response, impulse))
        g = torch.randn_like(forward(response, impulse)).detach()
        torch.library.opcheck(grad_impulse, (g, response.detach(), list(impulse.shape)))
        torch.library.opcheck(grad_response, (g, impulse.detach(), list(response.shape)))


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_torch_compile_fullgraph(kind):
    op = OPS[kind][0]

    def model(response, impulse):
        return (op(response * 2.0, impulse).relu() ** 2).sum()

    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    response, impulse = make_inputs((2, 2, 3, 6, 8, 3, 2), sparse=kind == "sparse", requires_grad=True)
    loss = compiled(response, impulse)
    loss.backward()
    r2, i2 = response.detach().clone().requires_grad_(), impulse.detach().clone().requires_grad_()
    expected = model(r2, i2)
    expected.backward()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(response.grad, r2.grad)
    torch.testing.assert_close(impulse.grad, i2.grad)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_deterministic(kind, device):
    op = OPS[kind][0]
    response, impulse = make_inputs((3, 3, 3, 20, 33, 7, 6), sparse=kind == "sparse", dtype=torch.float32,
                                    device=device)
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, threads, 1):
            torch.set_num_threads(n)
            r, i = response.clone().requires_grad_(), impulse.clone().requires_grad_()
            out = op(r, i)
            out.backward(torch.ones_like(out))
            results.append((out, r.grad, i.grad))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


def test_reference_variants_agree():
    for shape in DENSE_SHAPES:
        response, impulse = make_inputs(shape, seed=3)
        expected = ref.dense_shift_add(response, impulse)
        for name, variant in ref.DENSE_VARIANTS.items():
            assert_close_scaled(variant(response, impulse), expected, torch.float64), name
    for shape in SPARSE_SHAPES:
        response, impulse = make_inputs(shape, sparse=True, seed=4)
        expected = ref.sparse_shift_add(response, impulse)
        for name, variant in ref.SPARSE_VARIANTS.items():
            assert_close_scaled(variant(response, impulse), expected, torch.float64), name


def test_sparse_reference_handles_non_square_kernels():
    """The seed's sparseConv2d swapped height and width; Hr != Wr must still be right."""
    response, impulse = make_inputs((2, 3, 3, 6, 9, 2, 5), sparse=True)
    expected = torch.stack([ref.dense_shift_add(response[:, c:c + 1], impulse[:, c:c + 1])[:, 0]
                            for c in range(3)], dim=1)
    assert_close_scaled(ref.sparse_grouped(response, impulse), expected, torch.float64)


def test_dense_channel_order_is_impulse_major():
    response, impulse = make_inputs((1, 2, 3, 4, 5, 2, 2))
    out = dense_conv.dense_conv2d(response, impulse)
    for i in range(2):
        for r in range(3):
            single = ref.dense_shift_add(response[:, r:r + 1], impulse[:, i:i + 1])
            torch.testing.assert_close(out[:, i * 3 + r], single[:, 0])


# ---- bad input -------------------------------------------------------------------------------

BAD_INPUTS = [
    ("dense", lambda: (torch.randn(2, 3, 3), torch.randn(2, 1, 4, 4)), "response must be 4-D"),
    ("dense", lambda: (torch.randn(2, 3, 3, 3), torch.randn(2, 4, 4)), "impulse must be 4-D"),
    ("dense", lambda: (torch.randn(2, 3, 3, 3), torch.randn(3, 1, 4, 4)), "batch mismatch"),
    ("sparse", lambda: (torch.randn(2, 3, 3, 3), torch.randn(2, 2, 4, 4)), "channel mismatch"),
    ("dense", lambda: (torch.randn(2, 3, 3, 3), torch.randn(2, 1, 4, 4, dtype=torch.float64)), "dtype"),
    ("dense", lambda: (torch.ones(2, 3, 3, 3, dtype=torch.int64), torch.ones(2, 1, 4, 4, dtype=torch.int64)),
     "floating-point"),
    ("sparse", lambda: (torch.ones(2, 1, 3, 3, dtype=torch.int32), torch.randn(2, 1, 4, 4)), "floating-point"),
]


@pytest.mark.parametrize("kind,make,message", BAD_INPUTS)
def test_bad_input_raises_clear_error(kind, make, message):
    op = OPS[kind][0]
    with pytest.raises(RuntimeError, match=message):
        op(*make())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_mixed_devices_raise():
    with pytest.raises(RuntimeError, match="device"):
        dense_conv.dense_conv2d(torch.randn(1, 1, 2, 2), torch.randn(1, 1, 3, 3, device="cuda"))


def test_cuda_tensor_without_cuda_kernels_is_not_silently_wrong():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    # Without a GPU no CUDA tensor can be made; the op must still refuse meta tensors with no data.
    out = dense_conv.dense_conv2d(torch.empty(2, 3, 4, 5, device="meta"), torch.empty(2, 2, 7, 8, device="meta"))
    assert out.shape == (2, 6, 7, 8) and out.device.type == "meta"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("shape", [(0, 2, 3, 4, 5, 2, 2), (2, 0, 3, 4, 5, 2, 2), (2, 2, 0, 4, 5, 2, 2),
                                   (2, 2, 3, 0, 5, 2, 2), (2, 2, 3, 4, 0, 2, 2), (2, 2, 3, 4, 5, 0, 2),
                                   (2, 2, 3, 4, 5, 2, 0)])
def test_empty_dimensions(kind, shape, device):
    if kind == "sparse" and shape[2] == 0:
        shape = (shape[0], 0, 0) + shape[3:]
    op, reference, _ = OPS[kind]
    response, impulse = make_inputs(shape, sparse=kind == "sparse", device=device, requires_grad=True)
    out = op(response, impulse)
    expected = reference(response.detach().cpu(), impulse.detach().cpu())
    assert out.shape == expected.shape
    assert torch.equal(out.cpu(), expected)
    out.sum().backward()
    assert response.grad.shape == response.shape and impulse.grad.shape == impulse.shape
    assert not response.grad.abs().sum() and not impulse.grad.abs().sum()


# ---- CUDA build and CPU-vs-CUDA ---------------------------------------------------------------

def _nvcc_available():
    return (shutil.which("nvcc") is not None or os.path.exists("/usr/local/cuda-13.0/bin/nvcc")) and \
        torch.version.cuda is not None


@pytest.mark.skipif(os.environ.get("USE_CUDA", "").strip() == "0", reason="CPU-only build requested (USE_CUDA=0)")
def test_cuda_kernels_compiled_when_nvcc_present():
    if not _nvcc_available():
        pytest.skip("no nvcc or no CUDA build of torch: the CPU-only build is expected")
    assert dense_conv.cuda_kernels_compiled(), "nvcc was present but the extension has no CUDA kernels"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("kind,shape", ALL_CASES)
def test_cuda_matches_cpu(kind, shape, dtype):
    op = OPS[kind][0]
    response, impulse = make_inputs(shape, sparse=kind == "sparse", dtype=torch.float32, seed=11)
    expected = op(response.double(), impulse.double())
    out = op(response.cuda().to(dtype), impulse.cuda().to(dtype))
    assert out.dtype == dtype
    assert_close_scaled(out.float(), expected, dtype)


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_non_tensor_argument_is_a_type_error(kind):
    op = OPS[kind][0]
    with pytest.raises(TypeError, match="response must be a torch.Tensor"):
        op([[1.0]], torch.randn(1, 1, 3, 3))
    with pytest.raises(TypeError, match="impulse must be a torch.Tensor"):
        op(torch.randn(1, 1, 3, 3), 3.0)


@pytest.mark.parametrize("algorithm", ["direct", "fft", "auto"])
def test_meta_tensors_give_shapes_for_every_algorithm(algorithm):
    out = dense_conv.dense_conv2d(torch.empty(2, 3, 2, 2, device="meta"), torch.empty(2, 4, 5, 6, device="meta"),
                                  algorithm=algorithm)
    assert out.shape == (2, 12, 5, 6) and out.device.type == "meta"
