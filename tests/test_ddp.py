"""The mixing layers under DistributedDataParallel: gloo, 2 CPU processes, each half of the batch.

DDP averages the two processes' gradients, so after one backward of each half's mean loss every process
must hold the gradient one process computes for the whole batch's mean loss; and a few SGD steps must
leave both processes with the parameters of single-process training. Float64, so the only differences
are the order of the batch sums.
"""
import os
import socket
import time
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from dense_conv import DenseMix, FactoredMix

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with the gloo backend is not available")

WORLD = 2
STEPS = 3
TIMEOUT_S = 60  # the whole run: a stuck process group fails the test instead of hanging CI
LAYERS = {"DenseMix": DenseMix, "FactoredMix": FactoredMix}


class Net(nn.Module):
    """A trainable 1x1 conv in front of the impulse, then the layer: gradients flow through both inputs."""

    def __init__(self, layer):
        super().__init__()
        torch.manual_seed(0)
        self.pre = nn.Conv2d(3, 3, 1)
        self.mix = LAYERS[layer](impulse_channels=3, response_channels=2, out_channels=4)
        self.double()

    def forward(self, response, impulse):
        return self.mix(response, self.pre(impulse))


def batch():
    gen = torch.Generator().manual_seed(1)
    response = torch.randn(4, 2, 4, 5, generator=gen, dtype=torch.float64)
    impulse = torch.randn(4, 3, 12, 16, generator=gen, dtype=torch.float64)
    target = torch.randn(4, 4, 12, 16, generator=gen, dtype=torch.float64)
    return response, impulse, target


def train(model, response, impulse, target):
    """Gradients after the first backward and parameters after STEPS steps of SGD on the mean squared error."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    first = None
    for _ in range(STEPS):
        opt.zero_grad()
        nn.functional.mse_loss(model(response, impulse), target).backward()
        if first is None:
            first = {name: p.grad.clone() for name, p in model.named_parameters()}
        opt.step()
    return first, {name: p.detach().clone() for name, p in model.named_parameters()}


def worker(rank, port, out_dir):
    """One DDP process: every layer on its half of the batch; what it holds goes to out_dir/rank<r>.pt."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
                            timeout=timedelta(seconds=TIMEOUT_S // 2))
    try:
        half = slice(rank * 2, rank * 2 + 2)
        results = {}
        for layer in LAYERS:
            model = nn.parallel.DistributedDataParallel(Net(layer))
            grads, params = train(model, *(t[half] for t in batch()))
            strip = len("module.")
            results[layer] = {"grads": {k[strip:]: v for k, v in grads.items()},
                              "params": {k[strip:]: v for k, v in params.items()}}
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    """[what rank r holds] after one spawn of WORLD processes (a spawn costs a torch import per process)."""
    out_dir = tmp_path_factory.mktemp("ddp")
    context = mp.start_processes(worker, args=(free_port(), str(out_dir)), nprocs=WORLD, join=False,
                                 start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    try:
        # join() returns as soon as one process ends (False while others run); it raises if one failed
        while not context.join(timeout=max(0.0, deadline - time.monotonic())):
            assert time.monotonic() < deadline, f"DDP processes still running after {TIMEOUT_S} s"
    finally:
        for process in context.processes:
            if process.is_alive():
                process.terminate()
    return [torch.load(out_dir / f"rank{rank}.pt") for rank in range(WORLD)]


@pytest.mark.parametrize("layer", LAYERS)
def test_ddp_two_processes_match_one_process(layer, ddp_results):
    expected_grads, expected_params = train(Net(layer), *batch())
    assert set(expected_grads) == {name for name, _ in Net(layer).named_parameters()}
    for result in ddp_results:
        for name, grad in expected_grads.items():
            assert grad.abs().max() > 0, name
            torch.testing.assert_close(result[layer]["grads"][name], grad, rtol=1e-12, atol=1e-14, msg=name)
        for name, param in expected_params.items():
            torch.testing.assert_close(result[layer]["params"][name], param, rtol=1e-12, atol=1e-14, msg=name)
