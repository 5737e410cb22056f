"""Shared test helpers: devices, dtypes, shapes and tolerances."""
import torch

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# (B, Ci, Cr, Hi, Wi, Hr, Wr): odd sizes, 1x1 kernels, kernels larger than the image, partial tiles
# (the CUDA tiles are 16 x 64 and the tap chunks 8 x 16), B = 1, Ci or Cr = 1, Cr above one block's 8.
DENSE_SHAPES = [
    (2, 3, 4, 7, 9, 3, 2),
    (1, 1, 1, 5, 5, 1, 1),
    (1, 2, 3, 4, 6, 9, 11),      # kernel larger than the image
    (3, 1, 5, 17, 70, 10, 17),   # partial CUDA tiles and tap chunks in both directions
    (2, 4, 1, 13, 31, 5, 5),
    (1, 2, 9, 6, 5, 2, 3),       # Cr = 9: two response chunks on CUDA
    (2, 3, 2, 33, 20, 37, 16),   # the user's kernel shape on a small image
]
SPARSE_SHAPES = [(B, Ci, Ci, Hi, Wi, Hr, Wr) for (B, Ci, _, Hi, Wi, Hr, Wr) in DENSE_SHAPES]

# float32 results vs the float64 reference, relative to the output scale
TOLERANCE = {torch.float32: 2e-5, torch.float64: 1e-12, torch.float16: 5e-3, torch.bfloat16: 3e-2}


def make_inputs(shape, dtype=torch.float64, device="cpu", sparse=False, seed=0, requires_grad=False):
    B, Ci, Cr, Hi, Wi, Hr, Wr = shape
    g = torch.Generator().manual_seed(seed)
    response = torch.randn(B, Ci if sparse else Cr, Hr, Wr, generator=g, dtype=torch.float64)
    impulse = torch.randn(B, Ci, Hi, Wi, generator=g, dtype=torch.float64)
    return (response.to(device=device, dtype=dtype).requires_grad_(requires_grad),
            impulse.to(device=device, dtype=dtype).requires_grad_(requires_grad))


def assert_close_scaled(actual, expected, dtype):
    """|actual - expected| <= tol * max|expected| (error relative to the output's scale)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert torch.isfinite(actual).all(), "non-finite values in the result"
    scale = expected.abs().max().item() if expected.numel() else 1.0
    err = (actual.double().cpu() - expected.double().cpu()).abs().max().item() if expected.numel() else 0.0
    assert err <= TOLERANCE[dtype] * max(scale, 1e-30), f"max error {err:.3e} vs scale {scale:.3e} ({dtype})"
