"""Bad network pickles: each gives one clear NetworkPklError, and safe mode runs no code from the file."""
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from stylegan_unlearn.cli import main as cli_main
from stylegan_unlearn.pkl import (NetworkPklError, NetworkPklNotFoundError, PersistentRecord, load_generator,
                                  load_network_pkl, save_network_pkl)
from tiny import WIDE, tiny_networks
from torch_utils import persistence


@pytest.fixture()
def good_pkl(tmp_path):
    G, D = tiny_networks(None, **WIDE)
    path = tmp_path / "good.pkl"
    save_network_pkl(path, dict(G=G, D=D, G_ema=G))
    return path


def _error(path, **kwargs) -> str:
    with pytest.raises(NetworkPklError) as info:
        load_network_pkl(path, **kwargs)
    return str(info.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.pkl"
    with pytest.raises(NetworkPklNotFoundError, match="does not exist") as info:
        load_network_pkl(path)
    assert isinstance(info.value, FileNotFoundError) and str(path) in str(info.value)


def test_directory_instead_of_file(tmp_path):
    assert "directory" in _error(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pkl"
    path.write_bytes(b"")
    assert "empty" in _error(path)


@pytest.mark.parametrize("safe", [True, False])
def test_truncated_pickle(good_pkl, tmp_path, safe):
    data = good_pkl.read_bytes()
    path = tmp_path / "half.pkl"
    path.write_bytes(data[: len(data) // 2])
    message = _error(path, safe=safe)
    assert "truncated" in message and str(path) in message


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.pkl"
    path.write_bytes(np.random.RandomState(0).bytes(4096))
    assert "is not a network pickle" in _error(path)


def test_png_given_as_pickle(tmp_path):
    path = tmp_path / "image.pkl"
    Image.new("RGB", (4, 4)).save(path, format="PNG")
    assert "is an image" in _error(path)


def test_torch_zip_checkpoint_gets_a_conversion_hint(tmp_path):
    path = tmp_path / "550000.pt"
    torch.save({"g_ema": {"style.1.weight": torch.zeros(2)}}, path)
    assert zipfile.is_zipfile(path)
    message = _error(path)
    assert "torch.save" in message and "stylegan-unlearn convert" in message


def test_legacy_torch_save_gets_a_conversion_hint(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"g_ema": {}}, path, _use_new_zipfile_serialization=False)
    message = _error(path)
    assert "torch.save" in message and "stylegan-unlearn convert" in message


def test_pickle_without_g_ema(tmp_path):
    path = tmp_path / "partial.pkl"
    path.write_bytes(pickle.dumps({"G": None, "D": None}, protocol=4))
    message = _error(path)
    assert "no 'G_ema'" in message and "G, D" in message


def test_pickle_of_something_else(tmp_path):
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=4))
    assert "holds a list" in _error(path)


def test_unknown_network_family(golden_dir, tmp_path):
    with pytest.raises(NetworkPklError, match="'TinyNet' of the unknown network family"):
        load_generator(golden_dir / "persistence_tiny.pkl")
    result = CliRunner().invoke(cli_main, ["generate", "--network", str(golden_dir / "persistence_tiny.pkl"),
                                           "--seeds", "0", "--outdir", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "unknown network family" in result.output and "Traceback" not in result.output


# --------------------------------------------------------------------------------------------------
# Hostile pickles


class _Hostile:
    """Pickles as a persistent object whose stored source writes a marker file when executed."""

    def __init__(self, marker):
        self.src = f"import os\nopen({str(marker)!r}, 'w').write('pwned')\nos.system('true')\n"

    def __reduce__(self):
        meta = dict(type="class", version=6, module_src=self.src, class_name="Generator",
                    state={"_parameters": {}, "_buffers": {}, "_modules": {}})
        return persistence._reconstruct_persistent_obj, (meta,)


def test_embedded_source_never_runs_in_safe_mode(tmp_path):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "hostile.pkl"
    path.write_bytes(pickle.dumps(dict(G=_Hostile(marker), D=_Hostile(marker), G_ema=_Hostile(marker)), protocol=4))

    data = load_network_pkl(path)
    assert isinstance(data["G_ema"], PersistentRecord)
    with pytest.raises(NetworkPklError):
        load_generator(path)
    save_network_pkl(tmp_path / "copy.pkl", data)
    assert not marker.exists()

    # The same file really is hostile: the compatible (trusting) reader runs the source.
    with pytest.raises(NetworkPklError):
        load_network_pkl(path, safe=False)
    assert marker.read_text() == "pwned"


class _SystemCall:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_direct_global_reduce_is_refused(tmp_path):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "system.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _SystemCall(f"touch {marker}")}, protocol=4))
    assert "refusing to load global posix.system in safe mode; use safe=False if you trust the file" in _error(path)
    # Protocol-2 style GLOBAL opcode naming os.system directly.
    path.write_bytes(b"\x80\x02cos\nsystem\nq\x00X" + len(f"touch {marker}").to_bytes(4, "little")
                     + f"touch {marker}".encode() + b"\x85R.")
    assert "refusing to load global os.system" in _error(path)
    assert not marker.exists()


def test_build_cannot_patch_allowed_classes(tmp_path):
    # GLOBAL collections.OrderedDict, then BUILD {'__repr__': 1} on the class object itself.
    path = tmp_path / "patch.pkl"
    path.write_bytes(b"\x80\x02ccollections\nOrderedDict\n}X\x08\x00\x00\x00__repr__K\x01sb.")
    assert "refusing" in _error(path)
    from collections import OrderedDict
    assert "__repr__" not in vars(OrderedDict) or callable(vars(OrderedDict)["__repr__"])


def test_storage_bytes_with_code_are_refused(tmp_path):
    marker = tmp_path / "marker.txt"
    inner = pickle.dumps(_SystemCall(f"touch {marker}"), protocol=2)

    class _Storage:
        def __reduce__(self):
            return torch.storage._load_from_bytes, (inner,)

    path = tmp_path / "storage.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Storage()}, protocol=4))
    assert "not a valid network pickle" in _error(path)
    assert not marker.exists()
