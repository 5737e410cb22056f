"""docs/api.md is generated from the docstrings (tools/gen_api_docs.py) and is up to date; every public
name has a docstring that states its shapes and dtypes."""
import importlib.util
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_api_docs", ROOT / "tools" / "gen_api_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _load_generator()

# A tensor shape in brackets with at least one size name or number: [B, C, Hi, Wi], [T], [..., T], [83].
SHAPE = re.compile(r"\[[^\[\]]*[A-Za-z0-9][^\[\]]*\]")
DTYPE = re.compile(r"float|complex|dtype")
# Public names that take and return no tensors or arrays.
NO_SHAPES = {"cuda_kernels_compiled"}


def _entries():
    """(qualified name, object) of every documented public name, once each."""
    return [(qualname, obj) for _, rows in gen.documented_objects() for _, obj, qualname, first in rows if first]


def _members():
    """(qualified name, member) of the public methods and properties of the documented classes."""
    return [(f"{qualname}.{name}", member) for qualname, obj in _entries() if inspect.isclass(obj)
            for name, member in gen.class_members(obj)]


def test_api_md_is_up_to_date():
    diff = gen.check()
    assert diff == "", f"docs/api.md is stale; run `python tools/gen_api_docs.py`:\n{diff[:5000]}"


def test_output_is_deterministic_and_machine_independent():
    text = gen.render()
    assert text == gen.render()
    assert str(ROOT) not in text
    assert not re.search(r" at 0x[0-9a-fA-F]+", text)
    assert "(undocumented)" not in text


def test_every_module_section_and_public_name_is_documented():
    text = gen.render()
    for module_name in gen.MODULES:
        module = importlib.import_module(module_name)
        assert f"\n## {module_name}\n" in text
        for name in gen.public_names(module):
            assert name in text, f"{module_name}.{name} is missing from docs/api.md"
    # the package's own names and the functions functional.py defines are all there
    import dense_conv
    import dense_conv.functional
    assert set(dense_conv.__all__) <= set(gen.public_names(dense_conv))
    assert {"dense_conv2d", "sparse_conv2d", "octave_downsample"} <= set(gen.public_names(dense_conv.functional))


@pytest.mark.parametrize("qualname,obj", _entries(), ids=lambda v: v if isinstance(v, str) else "")
def test_public_name_states_shapes_and_dtypes(qualname, obj):
    doc = gen.docstring(qualname.rsplit(".", 1)[1], obj)
    assert len(doc.split()) >= 8, f"{qualname}: no docstring (or a stub): {doc!r}"
    if qualname.rsplit(".", 1)[1] in NO_SHAPES:
        return
    assert SHAPE.search(doc), f"{qualname}: the docstring states no shape such as [B, C, H, W]:\n{doc}"
    assert DTYPE.search(doc), f"{qualname}: the docstring states no dtype:\n{doc}"


@pytest.mark.parametrize("qualname,member", _members(), ids=lambda v: v if isinstance(v, str) else "")
def test_public_methods_have_docstrings(qualname, member):
    doc = gen.docstring(qualname.rsplit(".", 1)[1], member)
    assert len(doc.split()) >= 5, f"{qualname}: no docstring (or a stub): {doc!r}"
    if qualname.endswith(".forward"):
        assert SHAPE.search(doc), f"{qualname}: forward's docstring states no shape:\n{doc}"


def test_check_reports_a_stale_file(tmp_path):
    stale = tmp_path / "api.md"
    stale.write_text(gen.render().replace("dense_conv2d", "dense_conv_2d", 1))
    diff = gen.check(stale)
    assert "-" in diff and "+" in diff and "dense_conv_2d" in diff
    stale.write_text(gen.render())
    assert gen.check(stale) == ""
