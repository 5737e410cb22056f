"""The emulator's counting build (tests/emu/counters.h): shared-memory wavefronts and global sectors per
warp request on planted accesses, and block sampling of a real kernel against the full launch."""
import pytest
import torch

from emu import harness

FIELDS = ("shared_requests", "shared_wavefronts", "global_load_requests", "global_load_sectors",
          "global_store_requests", "global_store_sectors")


def probe_counts(vector_width, shared, stride):
    with harness.counting() as c:
        harness.access_probe(vector_width, shared, 32, stride)
    (launch,) = c.launches
    return launch


# (float / float2 / float4, stride in elements) -> shared wavefronts of the one load request: 32 banks of
# 4 bytes; the same word is a broadcast; 8-byte accesses run in half-warp phases, 16-byte in quarter-warps.
@pytest.mark.parametrize("width,stride,wavefronts", [
    (1, 0, 1), (1, 1, 1), (1, 2, 2), (1, 32, 32),
    (2, 0, 2), (2, 1, 2), (2, 2, 4), (4, 0, 4), (4, 1, 4), (4, 2, 8), (4, 32, 32)])
def test_shared_wavefronts(width, stride, wavefronts):
    launch = probe_counts(width, True, stride)
    assert (launch["shared_requests"], launch["shared_wavefronts"]) == (1, wavefronts)
    # the store of 32 x width floats: 4 x width sectors of 32 bytes
    assert (launch["global_store_requests"], launch["global_store_sectors"]) == (1, 4 * width)


@pytest.mark.parametrize("width,stride,sectors", [(1, 0, 1), (1, 1, 4), (1, 2, 8), (1, 32, 32), (4, 1, 16)])
def test_global_sectors(width, stride, sectors):
    launch = probe_counts(width, False, stride)
    assert (launch["global_load_requests"], launch["global_load_sectors"]) == (1, sectors)
    assert launch["shared_requests"] == 0
    assert launch["dram_sectors"] == sectors + 4 * width


def test_sampled_dense_forward_matches_full_launch():
    """Sampled blocks (edges and spread interior ones, weighted) against every block of the launch:
    within 10% on every request and sector count (the forward's 1-D grid mixes full and partial tiles, so the
    sample must be dense enough: 18 of 54 blocks here). dram_sectors is not compared: blocks that share
    inputs make its sampled estimate an overcount."""
    g = torch.Generator().manual_seed(0)
    impulse = torch.randn(3, 3, 40, 300, generator=g)
    response = torch.randn(3, 2, 5, 7, generator=g)
    with harness.counting(sample=0) as full:
        harness.dense_forward(response, impulse)
    with harness.counting(sample=18) as sampled:
        harness.dense_forward(response, impulse)
    (f,), (s,) = full.launches, sampled.launches
    assert s["blocks_emulated"] < f["blocks_emulated"] == f["blocks_total"] == s["blocks_total"]
    assert f["shared_wavefronts"] >= f["shared_requests"] > 0
    for field in FIELDS:
        assert s[field] == pytest.approx(f[field], rel=0.10), field
