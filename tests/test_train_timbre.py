"""examples/train_timbre.py: the model on the custom ops and on the pure-PyTorch references trains to the same
loss curve (float64), runs are deterministic, and main() prints its figures and writes its plot."""
import os
import re
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
import train_timbre  # noqa: E402
from train_timbre import INSTRUMENTS, TimbreNet, make_notes, train  # noqa: E402

SMALL = dict(impulse_channels=3, response_channels=2, response_size=(5, 3), mixed_channels=4, trunk_channels=4)


def _ops_called(model, audio):
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        model(audio)
    return {e.key for e in prof.key_averages() if e.key.startswith("dense_conv::")}


def test_reference_ops_train_to_the_same_loss_curve():
    audio, labels = make_notes(8, seed=3, duration=0.25)
    models = []
    for reference in (False, True):
        torch.manual_seed(7)
        models.append(TimbreNet(**SMALL, reference=reference).double())
    fast, ref = models
    for (name, p), (_, q) in zip(fast.state_dict().items(), ref.state_dict().items()):
        assert torch.equal(p, q), name
    # the two paths really are different code: the custom ops on one side, none on the other
    assert {"dense_conv::per_sample_conv2d", "dense_conv::sparse_conv2d", "dense_conv::octave_downsample"} <= \
        _ops_called(fast, audio[:2].double())
    assert _ops_called(ref, audio[:2].double()) == set()

    curves = [train(m, audio.double(), labels, steps=4, batch=4, seed=5)["loss"] for m in (fast, ref)]
    assert len(curves[0]) == 4 and curves[0][0] != curves[0][-1]
    torch.testing.assert_close(torch.tensor(curves[0]), torch.tensor(curves[1]), rtol=1e-9, atol=0)
    for (name, p), (_, q) in zip(fast.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-12, msg=name)


def test_data_and_training_are_deterministic_in_the_seed():
    audio, labels = make_notes(12, seed=1, duration=0.25)
    again, labels_again = make_notes(12, seed=1, duration=0.25)
    other, _ = make_notes(12, seed=2, duration=0.25)
    assert torch.equal(audio, again) and torch.equal(labels, labels_again)
    assert not torch.equal(audio, other)
    assert sorted(labels.tolist()) == sorted(list(range(len(INSTRUMENTS))) * 2)  # balanced
    assert audio.dtype == torch.float32 and audio.abs().max() <= 1.01
    curves = []
    for _ in range(2):
        torch.manual_seed(4)
        curves.append(train(TimbreNet(**SMALL), audio, labels, steps=3, batch=4, seed=6)["loss"])
    assert curves[0] == curves[1]


def test_main_prints_its_figures_and_writes_the_plot(tmp_path, capsys):
    path = tmp_path / "plot.png"
    history = train_timbre.main(["--steps", "3", "--batch", "4", "--train-notes", "12", "--test-notes", "6",
                                 "--seed", "1", "--plot", str(path)])
    lines = capsys.readouterr().out.strip().splitlines()
    first, last = re.fullmatch(r"loss: (\d+\.\d{4}) -> (\d+\.\d{4})", lines[-2]).groups()
    assert float(first) == round(history["loss"][0], 4)
    assert float(last) == round(sum(history["loss"]) / 3, 4)
    accuracy, chance = re.fullmatch(r"held-out accuracy: (\d\.\d\d) \(chance (\d\.\d\d)\)", lines[-1]).groups()
    assert float(chance) == round(1 / len(INSTRUMENTS), 2)
    assert float(accuracy) == round(history["eval"][-1][1], 2) and [s for s, _ in history["eval"]] == [0, 1, 2, 3]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
