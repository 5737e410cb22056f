"""The `auto` cost model's calibration: the fit, the per-machine cache, its fallbacks, the CLI."""
import json

import pytest
import torch

from dense_conv import _algorithm, calibrate

@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache directory, DENSE_CONV_CALIBRATION unset, and the loaded constants forgotten."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(_algorithm.CALIBRATION_ENV, raising=False)
    _algorithm._load_constants.cache_clear()
    yield tmp_path
    _algorithm._load_constants.cache_clear()


def synthetic_table(seed):
    """Distinct positive constants for every term of every model, of the sizes real ones have."""
    scale = {"mac": 1e-11, "transform": 1e-10, "out": 1e-9, "sample": 1e-4, "call": 1e-3}
    return {model: {term: scale[term] * (1 + ((seed + 7 * i + 3 * j) % 5) / 2)
                    for j, term in enumerate(_algorithm.TERMS[model.split(".")[1]])}
            for i, model in enumerate(_algorithm.MODELS)}


def timings(table, shapes):
    """Exact model times of every calibration call under `table`."""
    out = []
    for shape in shapes:
        for algorithm in _algorithm.TERMS:
            for backward in (False, True):
                model = table[_algorithm.model_name(shape.problem, algorithm, backward)]
                seconds = sum(c * shape.counts()[term] for term, c in model.items())
                out.append((shape, algorithm, backward, seconds))
    return out


@pytest.mark.parametrize("batch", [1, 4])
def test_fit_recovers_known_constants(batch):
    """The calibration shapes determine every term: exact model timings give back the constants."""
    table = synthetic_table(batch)
    fitted = calibrate.fit_constants(timings(table, calibrate.calibration_shapes(batch)))
    for model in _algorithm.MODELS:
        for term, c in table[model].items():
            assert fitted[model][term] == pytest.approx(c, rel=1e-6), (model, term)


def test_fit_is_non_negative_and_zeroes_absent_terms():
    """A term the timings do not contain comes back 0, never negative, and the others stay exact."""
    table = synthetic_table(0)
    for model in table.values():
        model["out"] = 0.0
    noisy = [(s, a, b, t * (1.02 if i % 3 else 0.98)) for i, (s, a, b, t) in
             enumerate(timings(table, calibrate.calibration_shapes(2)))]
    exact = calibrate.fit_constants(timings(table, calibrate.calibration_shapes(2)))
    rough = calibrate.fit_constants(noisy)
    for model in _algorithm.MODELS:
        assert exact[model]["out"] == pytest.approx(0.0, abs=1e-15)
        assert all(c >= 0 for c in rough[model].values())


def write(path, table, key=None):
    calibrate.save(path, key or _algorithm.machine_key(), table, [], "cpu")


def test_cache_round_trips_and_is_keyed_by_cpu(cache, monkeypatch):
    table = synthetic_table(1)
    key = _algorithm.machine_key()
    path = _algorithm.cache_path(key)
    assert str(path).startswith(str(cache)) and "threads" in path.name
    write(path, table)
    assert _algorithm.read_calibration(path) == (key, table)
    assert _algorithm.constants() == table
    # another CPU model (or ISA, torch, thread count) has another file: none here, so the built-ins
    monkeypatch.setattr(_algorithm, "cpu_model", lambda: "Some Other CPU 9000")
    assert _algorithm.cache_path(_algorithm.machine_key()) != path
    assert _algorithm.constants() == _algorithm.BUILTIN_CONSTANTS


def test_missing_cache_gives_the_builtins(cache):
    assert _algorithm.constants() == _algorithm.BUILTIN_CONSTANTS


def _drop_a_model(data):
    del data["constants"]["dense.fft.forward"]


def _negative(data):
    data["constants"]["mix.direct.training"]["mac"] = -1.0


def _other_format(data):
    data["format"] = 99


@pytest.mark.parametrize("damage", [_drop_a_model, _negative, _other_format, "not json {"], ids=str)
def test_corrupt_cache_is_ignored_with_a_warning(cache, damage):
    path = _algorithm.cache_path(_algorithm.machine_key())
    write(path, synthetic_table(2))
    if callable(damage):
        data = json.loads(path.read_text())
        damage(data)
        path.write_text(json.dumps(data))
    else:
        path.write_text(damage)
    with pytest.warns(UserWarning, match="ignoring the calibration cache"):
        assert _algorithm.constants() == _algorithm.BUILTIN_CONSTANTS


def test_cache_of_another_machine_is_ignored_with_a_warning(cache):
    key = _algorithm.machine_key()
    write(_algorithm.cache_path(key), synthetic_table(3), key={**key, "cpu": "Some Other CPU 9000"})
    with pytest.warns(UserWarning, match="written for"):
        assert _algorithm.constants() == _algorithm.BUILTIN_CONSTANTS


def test_environment_variable(cache, monkeypatch, tmp_path):
    table, other = synthetic_table(4), synthetic_table(5)
    write(_algorithm.cache_path(_algorithm.machine_key()), table)
    monkeypatch.setenv(_algorithm.CALIBRATION_ENV, "0")
    assert _algorithm.constants() == _algorithm.BUILTIN_CONSTANTS
    # an explicit file is used whatever machine wrote it
    explicit = tmp_path / "elsewhere.json"
    write(explicit, other, key={"cpu": "Some Other CPU 9000"})
    monkeypatch.setenv(_algorithm.CALIBRATION_ENV, str(explicit))
    assert _algorithm.constants() == other
    # and one that cannot be read is an error naming the variable, not a silent fallback
    monkeypatch.setenv(_algorithm.CALIBRATION_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match=_algorithm.CALIBRATION_ENV):
        _algorithm.constants()
    monkeypatch.delenv(_algorithm.CALIBRATION_ENV)
    assert _algorithm.constants() == table


@pytest.mark.parametrize("winner", ["direct", "fft"])
@pytest.mark.parametrize("L", [None, 8])
def test_choice_follows_the_loaded_constants(cache, winner, L):
    """A cache that makes one algorithm free makes `auto` pick it, forward and training, dense, sparse, mix."""
    table = synthetic_table(6)
    for model, terms in table.items():
        if model.split(".")[1] == winner:
            table[model] = dict.fromkeys(terms, 0.0)
    write(_algorithm.cache_path(_algorithm.machine_key()), table)
    for shape in ((64, 4, 5, 84, 600, 37, 16), (256, 1, 1, 84, 600, 5, 5), (64, 4, 5, 84, 600, 3, 3)):
        for backward in (False, True):
            assert _algorithm.choose(*shape, backward, L) == winner
    # and what the ops ask
    response, impulse = torch.empty(2, 5, 37, 16), torch.empty(2, 4, 84, 600)
    mix_weight = None if L is None else torch.empty(L, 4, 5)
    assert _algorithm.use_fft(response, impulse, "auto", sparse=False, mix_weight=mix_weight) == (winner == "fft")


def test_user_shape_costs_follow_the_table(cache):
    """costs() prices with the table it is given, else the loaded one."""
    table = synthetic_table(7)
    write(_algorithm.cache_path(_algorithm.machine_key()), table)
    args = (*calibrate.USER_SHAPE, True)
    assert _algorithm.costs(*args) == _algorithm.costs(*args, table=table)
    assert _algorithm.costs(*args) != _algorithm.costs(*args, table=_algorithm.BUILTIN_CONSTANTS)


def test_cli_smoke(tmp_path, capsys):
    """A tiny calibration run of the command's main() (in this process: no second torch import), end to
    end: it measures, prints, writes a file `auto` can load."""
    out = tmp_path / "calibration.json"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a loaded CI machine, threads that wait for each other multiply the time
    try:
        calibrate.main(["--batch", "1", "--repeats", "1", "--budget", "0", "--output", str(out)])
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert "constants (s per unit)" in printed and f"wrote {out}" in printed
    key, table = _algorithm.read_calibration(out)
    assert key == {**_algorithm.machine_key(), "threads": 1} and set(table) == set(_algorithm.MODELS)
    data = json.loads(out.read_text())
    assert len(data["measurements"]) == 4 * len(calibrate.calibration_shapes(1))
    assert all(m["seconds"] > 0 for m in data["measurements"])


def test_cli_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        calibrate.main(["--batch", "0"])
    assert "--batch" in capsys.readouterr().err
