"""dnnlib: EasyDict pickling, objects by dotted name, cache paths, open_url, Logger, format_time."""
import copy
import functools
import hashlib
import http.server
import os
import pickle
import sys
import threading

import numpy as np
import pytest

import dnnlib
from dnnlib import util


# ---------------------------------------------------------------------------------------------
# EasyDict

def test_easydict_attribute_access_maps_to_items():
    d = dnnlib.EasyDict(a=1)
    d.b = 2
    assert d["b"] == 2 and d.a == 1
    del d.a
    assert "a" not in d
    with pytest.raises(AttributeError):
        _ = d.missing
    with pytest.raises(AttributeError):
        del d.missing


def test_easydict_pickles_under_reference_name():
    assert dnnlib.EasyDict is util.EasyDict
    d = dnnlib.EasyDict(x=[1, 2], nested=dnnlib.EasyDict(y=3))
    blob = pickle.dumps(d, protocol=4)
    assert b"dnnlib.util" in blob and b"EasyDict" in blob
    back = pickle.loads(blob)
    assert type(back) is util.EasyDict and back == d and back.nested.y == 3
    deep = copy.deepcopy(d)
    deep.x.append(9)
    assert d.x == [1, 2]


# ---------------------------------------------------------------------------------------------
# Objects by dotted name

@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    """A package `myplugins.losses` on sys.path with a nested class, as a user plugin would be."""
    pkg = tmp_path / "myplugins"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "losses.py").write_text(
        "class Loss:\n"
        "    def __init__(self, a, scale=1):\n"
        "        self.a, self.scale = a, scale\n"
        "    class Inner:\n"
        "        value = 42\n"
        "def double(x):\n"
        "    return 2 * x\n"
    )
    (pkg / "broken.py").write_text("import this_dependency_does_not_exist_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "myplugins"
    for name in [n for n in sys.modules if n.startswith("myplugins")]:
        del sys.modules[name]


def test_construct_and_call_by_name(plugin_module):
    obj = util.construct_class_by_name(5, class_name="myplugins.losses.Loss", scale=3)
    assert (obj.a, obj.scale) == (5, 3)
    assert util.call_func_by_name(21, func_name="myplugins.losses.double") == 42
    assert util.get_obj_by_name("myplugins.losses.Loss.Inner").value == 42
    module, local = util.get_module_from_obj_name("myplugins.losses.Loss.Inner")
    assert module.__name__ == "myplugins.losses" and local == "Loss.Inner"


def test_shorthand_and_module_names():
    assert util.get_obj_by_name("np.float32") is np.float32
    assert util.get_obj_by_name("numpy.linalg.norm") is np.linalg.norm
    assert util.get_obj_by_name("os.path") is os.path


def test_unknown_names_give_one_clear_error(plugin_module):
    with pytest.raises(ImportError, match="cannot find 'myplugins.losses.Nope'"):
        util.get_obj_by_name("myplugins.losses.Nope")
    with pytest.raises(ImportError, match="no_such_package_xyz"):
        util.construct_class_by_name(class_name="no_such_package_xyz.Thing")
    with pytest.raises(ValueError):
        util.construct_class_by_name()


def test_import_error_inside_a_plugin_is_not_hidden(plugin_module):
    with pytest.raises(ModuleNotFoundError, match="this_dependency_does_not_exist_xyz"):
        util.get_obj_by_name("myplugins.broken.Thing")


def test_top_level_function_name_round_trip():
    name = util.get_top_level_function_name(util.format_time)
    assert name == "dnnlib.util.format_time"
    assert util.get_obj_by_name(name) is util.format_time


# ---------------------------------------------------------------------------------------------
# Cache directory

def test_cache_dir_priority(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DNNLIB_CACHE_DIR", raising=False)
    assert util.make_cache_dir_path("downloads") == str(tmp_path / "home" / ".cache" / "dnnlib" / "downloads")
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "env"))
    assert dnnlib.make_cache_dir_path("a", "b") == str(tmp_path / "env" / "a" / "b")
    util.set_cache_dir(str(tmp_path / "explicit"))
    try:
        assert util.make_cache_dir_path("x") == str(tmp_path / "explicit" / "x")
    finally:
        util.set_cache_dir(None)
    assert util.make_cache_dir_path() == str(tmp_path / "env")


# ---------------------------------------------------------------------------------------------
# open_url

def test_is_url():
    assert util.is_url("https://example.com/x.pkl")
    assert not util.is_url("/tmp/x.pkl")
    assert not util.is_url("file:///tmp/x.pkl")
    assert util.is_url("file:///tmp/x.pkl", allow_file_urls=True)
    assert not util.is_url(None)


def test_open_local_path_and_file_url(tmp_path):
    path = tmp_path / "net.pkl"
    path.write_bytes(b"local bytes")
    with util.open_url(str(path)) as f:
        assert f.read() == b"local bytes"
    with util.open_url(path.as_uri()) as f:
        assert f.read() == b"local bytes"
    assert util.open_url(str(path), return_filename=True) == str(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        util.open_url(str(tmp_path / "missing.pkl"))


def test_unreachable_url_names_url_and_cache_path(tmp_path, monkeypatch):
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "cache"))
    url = "http://127.0.0.1:9/x.pkl"
    expected = tmp_path / "cache" / "downloads" / (hashlib.md5(url.encode()).hexdigest() + "_x.pkl")
    assert util.url_cache_filename(url) == expected.name
    with pytest.raises(OSError) as info:
        util.open_url(url, num_attempts=1, verbose=False)
    assert isinstance(info.value, util.DownloadError)
    message = str(info.value)
    assert url in message and str(expected) in message
    assert not expected.exists()


def test_preseeded_cache_works_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "cache"))
    url = "http://127.0.0.1:9/models/ffhq%20v2.pkl?download=1"
    cached = tmp_path / "cache" / "downloads" / util.url_cache_filename(url)
    assert cached.name.endswith("_ffhq_v2.pkl")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"seeded")
    with util.open_url(url, num_attempts=1, verbose=False) as f:
        assert f.read() == b"seeded"
    assert util.open_url(url, return_filename=True, verbose=False) == str(cached)


def test_cache_written_by_other_dnnlib_code_is_reused(tmp_path):
    url = "http://127.0.0.1:9/pretrained/metfaces.pkl"
    other_name = hashlib.md5(url.encode()).hexdigest() + "_metfaces-1024.pkl"
    (tmp_path / other_name).write_bytes(b"theirs")
    assert util.open_url(url, cache_dir=str(tmp_path), return_filename=True) == str(tmp_path / other_name)
    (tmp_path / (hashlib.md5(url.encode()).hexdigest() + "_second.pkl")).write_bytes(b"ambiguous")
    with pytest.raises(util.DownloadError):
        util.open_url(url, cache_dir=str(tmp_path), num_attempts=1, verbose=False)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_http_download_is_cached_and_reused_offline(tmp_path):
    served = tmp_path / "www"
    served.mkdir()
    (served / "net.pkl").write_bytes(b"remote payload")
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/net.pkl"
    cache_dir = tmp_path / "cache"
    try:
        with util.open_url(url, cache_dir=str(cache_dir), verbose=False) as f:
            assert f.read() == b"remote payload"
        with pytest.raises(util.DownloadError, match="404"):
            util.open_url(url + ".missing", cache_dir=str(cache_dir), num_attempts=3, verbose=False)
        uncached = util.open_url(url, cache_dir=str(tmp_path / "other"), cache=False, verbose=False)
        assert uncached.read() == b"remote payload"
        assert not (tmp_path / "other").exists()
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(p.name for p in cache_dir.iterdir()) == [util.url_cache_filename(url)]
    with util.open_url(url, cache_dir=str(cache_dir), num_attempts=1, verbose=False) as f:
        assert f.read() == b"remote payload"


# ---------------------------------------------------------------------------------------------
# Logger and format_time

def test_logger_tees_stdout_and_stderr(tmp_path, capsys):
    log_path = tmp_path / "log.txt"
    with util.Logger(str(log_path)):
        print("hello")
        print("problem", file=sys.stderr)
    print("after")
    assert log_path.read_text() == "hello\nproblem\n"
    assert "hello" in capsys.readouterr().out


@pytest.mark.parametrize("seconds,text", [
    (0, "0s"), (59.4, "59s"), (61, "1m 01s"), (3723, "1h 02m 03s"),
    (2 * 86400 + 3 * 3600 + 4 * 60 + 5, "2d 03h 04m"),
])
def test_format_time(seconds, text):
    assert util.format_time(seconds) == text


def test_get_dtype_and_ctype():
    import ctypes
    assert util.get_dtype_and_ctype("float32") == (np.dtype("float32"), ctypes.c_float)
    assert util.get_dtype_and_ctype(np.uint8)[1] is ctypes.c_uint8
    with pytest.raises(ValueError, match="no ctypes equivalent"):
        util.get_dtype_and_ctype("complex64")


@pytest.mark.parametrize("seconds,text", [
    (59.4, "59s"), (61, "1m 01s"), (3723, "1h 02m"), (2 * 86400 + 3 * 3600 + 4 * 60 + 5, "2d 03h"),
])
def test_format_time_brief_keeps_two_units(seconds, text):
    assert util.format_time_brief(seconds) == text
