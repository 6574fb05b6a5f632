"""torch_utils.persistence: golden reference pickle, round trips, deepcopy, import hooks, errors."""
import copy
import io
import json
import pickle
import pickletools
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

import dnnlib
from torch_utils import persistence

REPO_ROOT = Path(__file__).resolve().parents[1]

MODULE_SOURCE = textwrap.dedent('''\
    """A tiny module of persistent classes, written by the test to a temporary directory."""
    import torch
    from torch_utils import persistence

    def double(x):
        return 2 * x

    @persistence.persistent_class
    class Affine(torch.nn.Module):
        def __init__(self, in_features, out_features, scale=1.0, options=None):
            super().__init__()
            self.scale = scale
            self.options = options
            self.fc = torch.nn.Linear(in_features, out_features)
            self.register_buffer('offset', torch.arange(out_features, dtype=torch.float32))

        def forward(self, x):
            return double(self.fc(x)) * self.scale + self.offset

    @persistence.persistent_class
    class Shifted(Affine):
        def forward(self, x):
            return super().forward(x) - 100

    @persistence.persistent_class
    class Pair(torch.nn.Module):
        def __init__(self, width):
            super().__init__()
            self.a = Affine(width, width, scale=0.5)
            self.b = Affine(width, 2)

        def forward(self, x):
            return self.b(self.a(x))

    class NotPersistent:
        pass

    @persistence.persistent_class
    class Holder(torch.nn.Module):
        def __init__(self, payload):
            super().__init__()
            self.payload = payload
''')


@pytest.fixture
def persist_module(tmp_path, monkeypatch):
    """Import MODULE_SOURCE under a unique name from a directory only this test puts on sys.path."""
    name = f"persist_test_mod_{uuid.uuid4().hex[:8]}"
    mod_dir = tmp_path / "mods"
    mod_dir.mkdir()
    (mod_dir / f"{name}.py").write_text(MODULE_SOURCE)
    monkeypatch.syspath_prepend(str(mod_dir))
    module = __import__(name)
    yield module
    sys.modules.pop(name, None)


def _first_global(blob: bytes):
    """(module, name) of the first global the pickle stream imports."""
    strings = []
    for op, arg, _ in pickletools.genops(blob):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL":
            return strings[-2], strings[-1]
        elif op.name == "GLOBAL":
            return tuple(arg.split(" ", 1))
    return None


# ---------------------------------------------------------------------------------------------
# Golden pickle written by the reference implementation

def test_golden_pickle_loads_and_reproduces_outputs(golden_dir):
    with open(golden_dir / "persistence_tiny.pkl", "rb") as f:
        data = pickle.load(f)
    expected = np.load(golden_dir / "persistence_tiny.npz")
    assert set(data) == {"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}
    assert data["augment_pipe"] is None
    assert isinstance(data["training_set_kwargs"], dnnlib.EasyDict)
    G, G_ema = data["G"], data["G_ema"]
    assert type(G).__name__ == "TinyNet" and persistence.is_persistent(G)
    assert re.fullmatch(r"_imported_module_[0-9a-f]{32}", type(G).__mro__[1].__module__)
    assert type(G) is type(data["D"]) is type(G_ema)  # one module for one source text
    assert isinstance(G.init_kwargs, dnnlib.EasyDict)
    x = torch.from_numpy(expected["x"])
    with torch.no_grad():
        np.testing.assert_allclose(G(x).numpy(), expected["y"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(G_ema(x).numpy(), expected["y_ema"], rtol=0, atol=1e-5)
        rebuilt = type(G)(*G.init_args, **G.init_kwargs)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in G.state_dict().items()}


def test_golden_pickle_rewrites_to_the_same_meta(golden_dir):
    with open(golden_dir / "persistence_tiny.pkl", "rb") as f:
        raw = f.read()
    G = pickle.loads(raw)["G"]
    fn, args, state = G.__reduce__()
    assert fn is persistence._reconstruct_persistent_obj and state is None
    meta = args[0]
    assert type(meta) is dict
    assert list(meta) == ["type", "version", "module_src", "class_name", "state"]
    assert (meta["type"], meta["version"], meta["class_name"]) == ("class", 6, "TinyNet")
    assert meta["module_src"].encode() in raw  # the exact original text is re-emitted


# ---------------------------------------------------------------------------------------------
# Round trips of our own persistent classes

def test_reduce_format_and_source_stored_once(persist_module):
    net = persist_module.Pair(3)
    blob = pickle.dumps({"G": net, "G_ema": copy.deepcopy(net)}, protocol=4)
    assert _first_global(blob) == ("torch_utils.persistence", "_reconstruct_persistent_obj")
    assert persist_module.__name__.encode() not in blob  # the class travels as source, not by reference
    assert blob.count(b"def double(x):") == 1
    referenced = set()

    class RecordingUnpickler(pickle.Unpickler):
        def find_class(self, module, name):
            referenced.add((module, name))
            return super().find_class(module, name)

    RecordingUnpickler(io.BytesIO(blob)).load()
    assert ("torch_utils.persistence", "_reconstruct_persistent_obj") in referenced
    allowed = ("torch.", "collections", "torch_utils.persistence")  # what the reference environment has too
    assert all(module.startswith(allowed) for module, _ in referenced), referenced
    assert net.a.init_kwargs == {"scale": 0.5} and net.a.init_args == (3, 3)


def test_round_trip_in_process(persist_module):
    net = persist_module.Pair(3)
    x = torch.randn(4, 3)
    back = pickle.loads(pickle.dumps(net, protocol=4))
    assert type(back) is type(net)  # exact-source cache hit: the already imported module is reused
    with torch.no_grad():
        assert torch.equal(back(x), net(x))
    assert back.a.fc.weight.data_ptr() != net.a.fc.weight.data_ptr()


def test_round_trip_in_fresh_process_without_the_module(persist_module, tmp_path):
    torch.manual_seed(1)
    net = persist_module.Pair(3)
    child = persist_module.Shifted(3, 3, scale=2.0, options={"mode": "x"})
    x = torch.randn(4, 3)
    with torch.no_grad():
        expected = {"pair": net(x).tolist(), "child": child(x).tolist()}
    pkl_path = tmp_path / "nets.pkl"
    pkl_path.write_bytes(pickle.dumps({"pair": net, "child": child, "x": x}, protocol=4))
    script = textwrap.dedent(f"""
        import importlib.util, json, pickle, sys
        sys.path[:0] = [{str(REPO_ROOT)!r}]
        assert importlib.util.find_spec({persist_module.__name__!r}) is None, 'module must not be importable'
        import torch
        with open({str(pkl_path)!r}, 'rb') as f:
            data = pickle.load(f)
        with torch.no_grad():
            out = {{k: data[k](data['x']).tolist() for k in ('pair', 'child')}}
        out['modules'] = sorted({{type(m).__mro__[1].__module__ for m in data['pair'].modules()
                                    if type(m).__module__ == 'torch_utils.persistence'}})
        out['child_name'] = type(data['child']).__name__
        out['child_kwargs'] = data['child'].init_kwargs
        out['repickled'] = len(pickle.dumps(data, protocol=4))
        print(json.dumps(out))
    """)
    result = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(out["pair"], expected["pair"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(out["child"], expected["child"], rtol=0, atol=1e-6)
    assert len(out["modules"]) == 1 and re.fullmatch(r"_imported_module_[0-9a-f]{32}", out["modules"][0])
    assert out["child_name"] == "Shifted" and out["child_kwargs"] == {"scale": 2.0, "options": {"mode": "x"}}
    assert out["repickled"] > 0


def test_deepcopy_goes_through_persistence(persist_module):
    net = persist_module.Affine(2, 2, options={"k": [1]})
    twin = copy.deepcopy(net)
    assert type(twin) is type(net)
    assert twin.fc.weight is not net.fc.weight and torch.equal(twin.fc.weight, net.fc.weight)
    with torch.no_grad():
        twin.fc.weight.add_(1)
    assert not torch.equal(twin.fc.weight, net.fc.weight)
    twin.options["k"].append(2)
    assert net.options == {"k": [1]}


def test_init_arguments_are_deep_copies(persist_module):
    options = {"levels": [1, 2]}
    net = persist_module.Affine(2, 3, options=options)
    options["levels"].append(3)
    assert net.init_kwargs.options == {"levels": [1, 2]}
    kwargs = net.init_kwargs
    kwargs.scale = 9.0
    assert net.init_kwargs == {"options": {"levels": [1, 2]}}
    assert type(net.init_kwargs) is dnnlib.EasyDict and net.init_args == (2, 3)


def test_decorator_is_idempotent_and_is_persistent(persist_module):
    cls = persist_module.Affine
    assert persistence.persistent_class(cls) is cls
    assert persistence.is_persistent(cls) and persistence.is_persistent(cls(1, 1))
    assert not persistence.is_persistent(torch.nn.Linear(1, 1))
    assert not persistence.is_persistent([1, 2])  # unhashable
    assert cls.__name__ == "Affine" and cls.__module__ == "torch_utils.persistence"
    just_in_time = persistence.persistent_class(persist_module.NotPersistent)
    assert persistence.is_persistent(just_in_time())


# ---------------------------------------------------------------------------------------------
# Import hooks

def test_import_hook_can_patch_source(persist_module, monkeypatch):
    monkeypatch.setattr(persistence, "_import_hooks", [])
    seen = []

    def hook(meta):
        seen.append((type(meta), type(meta.state), sorted(meta), meta.class_name))
        meta.module_src = meta.module_src.replace("return 2 * x", "return 20 * x")
        return meta

    persistence.import_hook(hook)
    net = persist_module.Affine(2, 2)
    x = torch.ones(1, 2)
    back = pickle.loads(pickle.dumps(net))
    assert seen == [(dnnlib.EasyDict, dnnlib.EasyDict, ["class_name", "module_src", "state", "type", "version"],
                     "Affine")]
    assert type(back) is not type(net)  # different source text -> different module
    with torch.no_grad():
        assert torch.allclose(back(x) - back.offset, 10 * (net(x) - net.offset))


def test_import_hook_must_return_meta(persist_module, monkeypatch):
    monkeypatch.setattr(persistence, "_import_hooks", [lambda meta: None])
    blob = pickle.dumps(persist_module.Affine(1, 1))
    with pytest.raises(TypeError, match="returned None"):
        pickle.loads(blob)
    with pytest.raises(TypeError):
        persistence.import_hook("not callable")


# ---------------------------------------------------------------------------------------------
# Errors

def test_unpicklable_content_fails_at_construction(persist_module):
    with pytest.raises(pickle.PicklingError, match="cannot be pickled"):
        persist_module.Holder(lambda: 1)

    class Local:  # not reachable by name, so it cannot be pickled
        pass

    with pytest.raises(pickle.PicklingError, match="cannot be pickled"):
        persist_module.Holder([1, {"x": Local()}])
    persist_module.Holder([1, torch.zeros(2), np.ones(2), persist_module.Affine(1, 1)])  # all accepted
    with pytest.raises(pickle.PicklingError):
        persistence._check_pickleable({"ok": 1, "bad": [lambda: 2]})


def test_class_must_be_top_level(persist_module):
    def make():
        class Inner(torch.nn.Module):
            pass
        return Inner

    Inner = make()
    Inner.__module__ = persist_module.__name__
    with pytest.raises(TypeError, match="top level"):
        persistence.persistent_class(Inner)()


def test_bad_meta_version_and_broken_source(persist_module):
    meta = persist_module.Affine(1, 1).__reduce__()[1][0]
    with pytest.raises(ValueError, match="version 7"):
        persistence._reconstruct_persistent_obj(dict(meta, version=7))
    broken = dict(meta, module_src="import module_that_does_not_exist_qq\n")
    with pytest.raises(ModuleNotFoundError) as info:
        persistence._reconstruct_persistent_obj(broken)
    assert any("embedded in a pickle" in note for note in info.value.__notes__)
    assert broken["module_src"] not in persistence._src_to_module_dict  # a later retry starts clean
    with pytest.raises(ValueError, match="does not define class"):
        persistence._reconstruct_persistent_obj(dict(meta, class_name="Missing"))
