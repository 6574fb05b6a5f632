"""Network pickles: safe and compatible loading, saving, round trips, families, force_fp16."""
import copy
import io
import json
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from stylegan_unlearn.networks.stylegan2 import Discriminator, Generator
from stylegan_unlearn.pkl import (NetworkPklError, PersistentRecord, describe_network, load_generator,
                                  load_network_pkl, save_network_pkl)
from stylegan_unlearn.pkl import families
from stylegan_unlearn.pkl.safe_unpickler import SafeUnpickler
from tiny import WIDE, tiny_discriminator, tiny_generator

REPO_ROOT = Path(__file__).resolve().parents[1]
SYNTHESIS = dict(channel_base=128, channel_max=16)


def _perturb(net: torch.nn.Module) -> torch.nn.Module:
    """Move weights and buffers away from their initial values so that a missed copy shows."""
    with torch.no_grad():
        for name, tensor in list(net.named_parameters()) + list(net.named_buffers()):
            if "resample_filter" not in name and tensor.is_floating_point():
                tensor.add_(torch.randn_like(tensor) * 0.1)
    return net


def make_networks(c_dim: int = 0, img_channels: int = 1, synthesis_kwargs=None):
    G = tiny_generator(c_dim=c_dim, img_channels=img_channels, **dict(synthesis_kwargs or SYNTHESIS))
    D = tiny_discriminator(c_dim=c_dim, img_channels=img_channels, **WIDE)
    return _perturb(G).eval(), _perturb(D).eval()


def sample(G, seed: int = 1, n: int = 2, psi: float = 0.7):
    z = torch.from_numpy(np.random.RandomState(seed).randn(n, G.z_dim)).float()
    c = torch.eye(G.c_dim)[torch.arange(n) % G.c_dim] if G.c_dim else None
    with torch.no_grad():
        return G(z, c, truncation_psi=psi, noise_mode="const")


def d_logits(D, G):
    img = sample(G)
    c = torch.eye(D.c_dim)[torch.arange(len(img)) % D.c_dim] if D.c_dim else None
    with torch.no_grad():
        return D(img, c)


@pytest.fixture()
def tiny_pkl(tmp_path):
    G, D = make_networks()
    G_ema = copy.deepcopy(G)
    path = tmp_path / "net.pkl"
    save_network_pkl(path, dict(G=G, D=D, G_ema=G_ema, augment_pipe=None,
                                training_set_kwargs=dict(path="x.zip", resolution=np.int64(16), xflip=False)))
    return path, G_ema, D


def _stream_globals(data: bytes) -> set:
    """(module, name) of every global that unpickling `data` looks up."""
    found = set()

    class Recorder(SafeUnpickler):  # records without running any stored source
        def find_class(self, module, name):
            found.add((module, name))
            return super().find_class(module, name)

    Recorder(io.BytesIO(data)).load()
    return found


# --------------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("c_dim,channels", [(0, 1), (3, 3)])
def test_safe_load_rebuilds_our_networks_with_identical_outputs(tmp_path, c_dim, channels):
    G, D = make_networks(c_dim=c_dim, img_channels=channels)
    path = tmp_path / "net.pkl"
    save_network_pkl(path, dict(G=G, D=D, G_ema=G))
    data = load_network_pkl(path)
    assert isinstance(data["G_ema"], Generator) and isinstance(data["D"], Discriminator)
    assert data["G_ema"] is not G
    assert torch.equal(sample(data["G_ema"]), sample(G))
    assert torch.equal(d_logits(data["D"], G), d_logits(D, G))
    assert data["augment_pipe"] is None and data["training_set_kwargs"] is None
    assert torch.equal(data["G_ema"].mapping.w_avg, G.mapping.w_avg)


def test_compatible_then_safe_load_gives_identical_outputs(tiny_pkl, tmp_path):
    path, G_ema, D = tiny_pkl
    compat = load_network_pkl(path, safe=False)
    resaved = tmp_path / "resaved.pkl"
    save_network_pkl(resaved, compat)
    safe = load_network_pkl(resaved)
    reference = sample(G_ema)
    assert torch.equal(sample(compat["G_ema"]), reference)
    assert torch.equal(sample(safe["G_ema"]), reference)
    assert torch.equal(d_logits(safe["D"], G_ema), d_logits(D, G_ema))


def test_saved_pickle_loads_with_plain_pickle_in_a_fresh_process(tiny_pkl, tmp_path):
    path, G_ema, _ = tiny_pkl
    out = tmp_path / "img.npy"
    script = (
        "import pickle, sys, numpy as np, torch\n"
        f"data = pickle.load(open({str(path)!r}, 'rb'))\n"
        "G = data['G_ema']\n"
        "z = torch.from_numpy(np.random.RandomState(1).randn(2, G.z_dim)).float()\n"
        "with torch.no_grad():\n"
        "    img = G(z, None, truncation_psi=0.7, noise_mode='const')\n"
        f"np.save({str(out)!r}, img.numpy())\n"
        "assert 'stylegan_unlearn' not in sys.modules, 'the pickle needs our package'\n"
        "print(type(data['D']).__name__, type(data['training_set_kwargs']).__name__)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["Discriminator", "dict"]
    # Same weights and code; only thread-count-dependent float rounding may differ.
    np.testing.assert_allclose(np.load(out), sample(G_ema).numpy(), rtol=0, atol=1e-5)


def test_saved_pickle_follows_the_snapshot_conventions(tiny_pkl):
    path, _, _ = tiny_pkl
    raw = path.read_bytes()
    assert raw[:2] == b"\x80\x04"  # protocol 4
    modules = {m for m, _ in _stream_globals(raw)}
    assert modules <= {"torch_utils.persistence", "torch._utils", "torch.storage", "collections", "dnnlib.util"}
    assert raw.count(b"class SynthesisNetwork(") == 1  # the module source is stored once, shared by G, D, G_ema
    data = pickle.loads(raw)
    assert list(data) == ["G", "D", "G_ema", "augment_pipe", "training_set_kwargs"]
    assert type(data["training_set_kwargs"]) is dict
    assert type(data["training_set_kwargs"]["resolution"]) is int
    for key in ("G", "D", "G_ema"):
        net = data[key]
        assert not net.training
        assert all(not p.requires_grad and p.device.type == "cpu" for p in net.parameters())
        for sub in net.modules():
            assert not any(isinstance(v, np.generic) for v in vars(sub).values()), type(sub).__name__


def test_save_leaves_the_callers_networks_untouched(tmp_path):
    G, D = make_networks()
    G.train().requires_grad_(True)
    save_network_pkl(tmp_path / "a.pkl", dict(G=G, D=D, G_ema=G))
    assert G.training and all(p.requires_grad for p in G.parameters())


def test_save_is_atomic_when_pickling_fails(tmp_path, monkeypatch):
    G, D = make_networks()
    target = tmp_path / "net.pkl"
    target.write_bytes(b"previous contents")

    def failing_dump(obj, f, protocol=None):
        f.write(b"\x80\x04partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(pickle, "dump", failing_dump)
    with pytest.raises(RuntimeError):
        save_network_pkl(target, dict(G=G, D=D, G_ema=G))
    assert target.read_bytes() == b"previous contents"
    assert [p.name for p in tmp_path.iterdir()] == ["net.pkl"]


def test_save_requires_the_three_networks(tmp_path):
    G, _ = make_networks()
    with pytest.raises(NetworkPklError, match="D missing"):
        save_network_pkl(tmp_path / "x.pkl", dict(G=G, G_ema=G))
    assert not (tmp_path / "x.pkl").exists()


def test_file_url_and_load_generator(tiny_pkl):
    path, G_ema, _ = tiny_pkl
    G = load_generator(path.as_uri())
    assert not G.training
    assert torch.equal(sample(G), sample(G_ema))
    with open(path, "rb") as f:  # an open file, as the reference loader takes, is read and left open
        assert torch.equal(sample(load_network_pkl(f)["G_ema"]), sample(G_ema))
        assert not f.closed
    text = describe_network(G)
    assert "16x16x1" in text and "z_dim=8" in text and f"params={sum(p.numel() for p in G.parameters()):,}" in text


# --------------------------------------------------------------------------------------------------
# Records of classes we cannot rebuild


def test_golden_persistence_pickle_in_compatible_mode(golden_dir):
    data = load_network_pkl(golden_dir / "persistence_tiny.pkl", safe=False)
    ref = np.load(golden_dir / "persistence_tiny.npz")
    x = torch.from_numpy(ref["x"])
    with torch.no_grad():
        np.testing.assert_allclose(data["G"](x).numpy(), ref["y"], atol=1e-6)
        np.testing.assert_allclose(data["G_ema"](x).numpy(), ref["y_ema"], atol=1e-6)
    assert data["training_set_kwargs"]["resolution"] == 32


def test_unknown_family_stays_a_record_and_is_written_back_unchanged(golden_dir, tmp_path):
    src = golden_dir / "persistence_tiny.pkl"
    data = load_network_pkl(src)
    record = data["G_ema"]
    assert isinstance(record, PersistentRecord) and record.class_name == "TinyNet"
    assert families.recognise_family(record) == families.UNKNOWN
    assert record.init_args == (4, 3) and record.init_kwargs == {"scale": 2.0}
    assert set(record.named_tensors()) == {"fc.weight", "fc.bias", "offset"}

    resaved = tmp_path / "resaved.pkl"
    save_network_pkl(resaved, data)
    again = load_network_pkl(resaved)["G_ema"]
    assert again.module_src == record.module_src and again.class_name == "TinyNet"
    for name, tensor in record.named_tensors().items():
        assert torch.equal(again.named_tensors()[name], tensor)
    # The official way to read it (running its source) still reproduces the golden outputs.
    ref = np.load(golden_dir / "persistence_tiny.npz")
    compat = load_network_pkl(resaved, safe=False)
    with torch.no_grad():
        np.testing.assert_allclose(compat["G_ema"](torch.from_numpy(ref["x"])).numpy(), ref["y_ema"], atol=1e-6)
    assert copy.deepcopy(record).module_src == record.module_src  # copying a record never runs its source


def _record_of(net: torch.nn.Module, module_src=None, init_kwargs=None) -> PersistentRecord:
    """The record a pickle of `net` would hold, optionally with another source text or kwargs."""
    _, (meta,) = net.__reduce__()[:2]
    meta = dict(meta, state=dict(meta["state"]))
    if module_src is not None:
        meta["module_src"] = module_src
    if init_kwargs is not None:
        meta["state"]["_init_kwargs"] = init_kwargs
    return PersistentRecord(meta)


def test_stylegan3_sg2_layout_is_translated(tmp_path):
    G, D = make_networks(synthesis_kwargs=dict(SYNTHESIS, num_fp16_res=4, conv_clamp=256))
    sg3_src = G._orig_module_src + "\n# fused_modconv_default\n"
    flat = dict(z_dim=8, w_dim=8, c_dim=0, img_resolution=16, img_channels=1, mapping_kwargs=dict(num_layers=2),
                channel_base=128, channel_max=16, fused_modconv_default="inference_only")
    record = _record_of(G, sg3_src, flat)
    assert families.recognise_family(record) == families.SG3_SG2
    path = tmp_path / "sg3.pkl"
    with open(path, "wb") as f:
        pickle.dump(dict(G=record, D=D, G_ema=record), f, protocol=4)
    G2 = load_network_pkl(path)["G_ema"]
    assert isinstance(G2, Generator)
    assert G2.init_kwargs["synthesis_kwargs"] == dict(channel_base=128, channel_max=16, num_fp16_res=4,
                                                      conv_clamp=256)
    assert G2.mapping.w_avg_beta == 0.998
    assert torch.equal(sample(G2), sample(G))


def test_stylegan3_alias_free_networks_are_kept_opaque(tmp_path):
    G, D = make_networks()
    record = _record_of(G, "from torch_utils.ops import filtered_lrelu\n" + G._orig_module_src)
    path = tmp_path / "sg3t.pkl"
    with open(path, "wb") as f:
        pickle.dump(dict(G=record, D=D, G_ema=record), f, protocol=4)
    data = load_network_pkl(path)
    assert isinstance(data["G_ema"], PersistentRecord) and isinstance(data["D"], Discriminator)
    assert families.recognise_family(data["G_ema"]) == families.SG3
    with pytest.raises(NetworkPklError, match="stylegan3 network family"):
        load_generator(path)
    resaved = tmp_path / "resaved.pkl"
    save_network_pkl(resaved, data)
    assert load_network_pkl(resaved)["G_ema"].module_src_sha256 == record.module_src_sha256


def test_tensor_name_mismatch_is_reported_by_name(tmp_path):
    G, D = make_networks()
    extra = copy.deepcopy(G)
    extra.mapping.register_buffer("bogus", torch.zeros(1))
    del extra.synthesis.b8.conv0._buffers["noise_const"]
    path = tmp_path / "odd.pkl"
    save_network_pkl(path, dict(G=G, D=D, G_ema=extra))
    with pytest.raises(NetworkPklError) as info:
        load_network_pkl(path)
    message = str(info.value)
    assert "G_ema" in message and "mapping.bogus" in message and "synthesis.b8.conv0.noise_const" in message


def test_tensor_shape_mismatch_is_reported(tmp_path):
    G, D = make_networks()
    wrong = copy.deepcopy(G)
    wrong._init_kwargs = dict(wrong._init_kwargs, mapping_kwargs=dict(num_layers=2, layer_features=4))
    path = tmp_path / "odd.pkl"
    save_network_pkl(path, dict(G=G, D=D, G_ema=wrong))
    with pytest.raises(NetworkPklError, match="shapes do not match.*mapping.fc0.weight"):
        load_network_pkl(path)


# --------------------------------------------------------------------------------------------------
# force_fp16 and device


def test_force_fp16_rebuilds_with_fp16_kwargs(tiny_pkl):
    path, G_ema, D = tiny_pkl
    for safe in (True, False):
        data = load_network_pkl(path, safe=safe, force_fp16=True)
        assert data["G_ema"].init_kwargs["synthesis_kwargs"]["num_fp16_res"] == 4
        assert data["G_ema"].init_kwargs["synthesis_kwargs"]["conv_clamp"] == 256
        assert data["D"].init_kwargs["num_fp16_res"] == 4 and data["D"].init_kwargs["conv_clamp"] == 256
        # On the CPU the blocks still compute in fp32; a clamp at 256 does not bind for these images.
        torch.testing.assert_close(sample(data["G_ema"]), sample(G_ema), atol=1e-5, rtol=0)
        assert not data["G_ema"].training


def test_device_argument_moves_modules(tiny_pkl):
    path, _, _ = tiny_pkl
    data = load_network_pkl(path, device=torch.device("cpu"))
    assert all(p.device.type == "cpu" for p in data["G_ema"].parameters())
    with pytest.raises(NetworkPklError, match="device"):
        load_network_pkl(path, device="no-such-device")


# --------------------------------------------------------------------------------------------------
# Reference-layout pickles built from the golden tensors


# Marker text only: what the recogniser looks at in a StyleGAN2-ADA `training/networks.py` source.
ADA_SOURCE_STANDIN = "# stand-in\nclass MappingNetwork: ...\nclass SynthesisNetwork: ...\nclass Generator: ...\n" \
                     "class Discriminator: ...\n"


def _official_layout_record(tensors: dict, param_names: set, class_name: str, init_kwargs: dict, src: str,
                            attributes: dict) -> PersistentRecord:
    """Nested records shaped like a reference snapshot: params and buffers per submodule, numpy scalars inside."""
    from dnnlib import EasyDict

    def new_state():
        return {"training": False, "_parameters": {}, "_buffers": {}, "_modules": {}, "weight_gain": np.float64(0.5)}

    root = new_state()
    for name, value in tensors.items():
        *path, leaf = name.split(".")
        node = root
        for part in path:
            node = node["_modules"].setdefault(part, new_state())
        tensor = torch.from_numpy(value.copy())
        if name in param_names:
            node["_parameters"][leaf] = torch.nn.Parameter(tensor, requires_grad=False)
        else:
            node["_buffers"][leaf] = tensor

    def to_record(state, name):
        state["_modules"] = {k: to_record(v, "Layer") for k, v in state["_modules"].items()}
        return PersistentRecord(dict(type="class", version=6, module_src=src, class_name=name, state=state))

    def easy(value):
        return EasyDict({k: easy(v) for k, v in value.items()}) if isinstance(value, dict) else value

    root.update(attributes, _init_args=(), _init_kwargs=easy(init_kwargs))
    return to_record(root, class_name)


def _golden_pickle(golden_dir, tmp_path, name, flat_generator_kwargs=False):
    layout = json.loads((golden_dir / f"{name}_layout.json").read_text())
    npz = np.load(golden_dir / f"{name}.npz")
    src, g_kwargs = ADA_SOURCE_STANDIN, dict(layout["G_init_kwargs"])
    if flat_generator_kwargs:  # StyleGAN3's networks_stylegan2 layout
        src += "fused_modconv_default = 'inference_only'\n"
        g_kwargs.update(g_kwargs.pop("synthesis_kwargs"), fused_modconv_default="inference_only")
    nets = {}
    for key, kwargs in (("G", g_kwargs), ("D", layout["D_init_kwargs"])):
        tensors = {n: npz[f"{key}.{n}"] for n, _, _ in layout[f"{key}_state_dict"]}
        attrs = {k: layout[f"{key}_init_kwargs"][k] for k in ("c_dim", "img_resolution", "img_channels")}
        nets[key] = _official_layout_record(tensors, set(layout[f"{key}_param_names"]),
                                            "Generator" if key == "G" else "Discriminator", kwargs, src, attrs)
    path = tmp_path / f"{name}.pkl"
    with open(path, "wb") as f:
        pickle.dump(dict(training_set_kwargs=None, G=nets["G"], D=nets["D"], G_ema=nets["G"], augment_pipe=None),
                    f, protocol=4)
    cases = json.loads((golden_dir / f"{name}.json").read_text())["cases"]
    return path, cases, npz


@pytest.mark.parametrize("name,flat", [("sg2_cond16", False), ("sg2_uncond32", True)])
def test_reference_layout_pickle_reproduces_golden_outputs(golden_dir, tmp_path, name, flat):
    path, cases, npz = _golden_pickle(golden_dir, tmp_path, name, flat_generator_kwargs=flat)
    raw_globals = {m for m, _ in _stream_globals(path.read_bytes())}
    assert "dnnlib.util" in raw_globals and any(m.startswith("numpy") for m in raw_globals)
    data = load_network_pkl(path)
    G, D = data["G_ema"], data["D"]
    assert isinstance(G, Generator) and isinstance(D, Discriminator)
    for case in cases:
        arrays = {role: torch.from_numpy(npz[key]) for role, key in case["arrays"].items()}
        with torch.no_grad():
            if case["op"] == "G":
                img = G(arrays["in_z"], arrays["in_c"], **case["kwargs"])
                torch.testing.assert_close(img, arrays["out_img"], atol=1e-5, rtol=0)
            elif case["op"] == "D":
                logits = D(arrays["in_img"], arrays["in_c"])
                torch.testing.assert_close(logits, arrays["out_logits"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_safe_unpickler_reads_the_value_types_of_network_pickles(protocol):
    from collections import OrderedDict
    from dnnlib import EasyDict
    value = dict(arr=np.arange(6.0).reshape(2, 3), f64=np.float64(0.5), i64=np.int64(3), names={"a", "b"},
                 t=torch.arange(4.0)[1:], half=torch.ones(2, dtype=torch.float16), raw=b"\x00\xff",
                 p=torch.nn.Parameter(torch.ones(2)), dtype=torch.float16, size=torch.Size([1, 2]),
                 kwargs=EasyDict(a=1, nested=EasyDict(b=[1, 2])), od=OrderedDict(x=1))
    loaded = SafeUnpickler(io.BytesIO(pickle.dumps(value, protocol=protocol))).load()
    assert np.array_equal(loaded["arr"], value["arr"]) and loaded["f64"] == 0.5 and loaded["i64"] == 3
    assert torch.equal(loaded["t"], value["t"]) and loaded["half"].dtype == torch.float16
    assert isinstance(loaded["p"], torch.nn.Parameter) and loaded["p"].requires_grad
    assert isinstance(loaded["kwargs"], EasyDict) and loaded["kwargs"].nested.b == [1, 2]
    for key in ("names", "raw", "dtype", "size", "od"):
        assert loaded[key] == value[key]


def test_storages_saved_on_a_gpu_load_onto_the_cpu():
    from collections import OrderedDict
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # TypedStorage deprecation notice
        blob = torch.arange(3.0).__reduce_ex__(4)[1][0].__reduce__()[1][0]
    gpu_blob = blob.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
    assert gpu_blob != blob

    class Storage:
        def __reduce__(self):
            return torch.storage._load_from_bytes, (gpu_blob,)

    class Tensor:
        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, (Storage(), 0, (3,), (1,), False, OrderedDict())

    raw = pickle.dumps({"t": Tensor()}, protocol=4)
    loaded = SafeUnpickler(io.BytesIO(raw)).load()["t"]
    assert loaded.device.type == "cpu" and torch.equal(loaded, torch.arange(3.0))
    if not torch.cuda.is_available():  # what plain unpickling does with the same bytes on a CPU-only machine
        with pytest.raises(RuntimeError, match="CUDA"):
            pickle.loads(raw)


def test_load_networks_is_the_one_loader_and_names_the_option(tiny_pkl, tmp_path):
    from stylegan_unlearn.pkl import NETWORK_KEYS, NetworkPklNotFoundError, load_networks

    path, G_ema, _ = tiny_pkl
    data = load_networks(path, NETWORK_KEYS)
    assert torch.equal(sample(data["G_ema"]), sample(G_ema)) and isinstance(data["D"], Discriminator)
    with pytest.raises(NetworkPklNotFoundError, match="^--resume network '.*missing.pkl' does not exist"):
        load_networks(tmp_path / "missing.pkl", option="--resume")
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(NetworkPklError, match="^--adapted: .*bad.pkl is not a network pickle"):
        load_networks(bad, option="--adapted")
    only_g_ema = tmp_path / "g_ema.pkl"
    with open(only_g_ema, "wb") as f:
        pickle.dump(dict(G_ema=G_ema), f, protocol=4)
    with pytest.raises(NetworkPklError, match="has no 'G' network \\(it has G_ema\\)"):
        load_networks(only_g_ema, NETWORK_KEYS, safe=False)
    G = load_generator(only_g_ema, safe=False)
    assert not G.training and not any(p.requires_grad for p in G.parameters())
