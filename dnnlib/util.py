"""Small utilities with the same names and behaviour as the reference `dnnlib.util`.

Official pickles store constructor kwargs as `dnnlib.util.EasyDict`, and the reference training
code builds its plugins (datasets, networks, losses, optimizers) from dotted names with
`construct_class_by_name`; both must keep working here. Only the standard library and numpy are
used (no `distutils`, no `requests`), so this imports on any supported Python.
"""
import ctypes
import hashlib
import importlib
import io
import os
import re
import sys
import tempfile
import time
import types
import urllib.error
import urllib.parse
import urllib.request
from typing import IO, Any, Optional, Tuple, Union

import numpy as np

__all__ = [
    "EasyDict", "Logger", "DownloadError", "set_cache_dir", "make_cache_dir_path", "format_time",
    "format_time_brief", "get_dtype_and_ctype", "get_module_from_obj_name", "get_obj_from_module",
    "get_obj_by_name", "call_func_by_name", "construct_class_by_name", "get_module_dir_by_obj_name",
    "is_top_level_function", "get_top_level_function_name", "is_url", "url_cache_filename", "open_url",
]


# ---------------------------------------------------------------------------------------------
# EasyDict

class EasyDict(dict):
    """A dict whose items can also be read and written as attributes (`d.key` is `d['key']`).

    Its pickle name is `dnnlib.util.EasyDict`, as in reference pickles.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None


# ---------------------------------------------------------------------------------------------
# Logging and formatting

class Logger:
    """Copy everything written to stdout and stderr into a log file (and still show it).

    Installing a Logger replaces `sys.stdout`/`sys.stderr`; `close()` (or leaving a `with`
    block) restores them and closes the file.
    """

    def __init__(self, file_name: Optional[str] = None, file_mode: str = "w", should_flush: bool = True):
        self.file: Optional[IO[str]] = open(file_name, file_mode, encoding="utf-8") if file_name is not None else None
        self.should_flush = should_flush
        self.stdout = sys.stdout
        self.stderr = sys.stderr
        sys.stdout = self
        sys.stderr = self

    def __enter__(self) -> "Logger":
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        self.close()

    def write(self, text: Union[str, bytes]) -> None:
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        if not text:
            return
        if self.file is not None:
            self.file.write(text)
        self.stdout.write(text)
        if self.should_flush:
            self.flush()

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()
        self.stdout.flush()

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        """Flush, restore the original streams (if still ours) and close the log file."""
        self.flush()
        if sys.stdout is self:
            sys.stdout = self.stdout
        if sys.stderr is self:
            sys.stderr = self.stderr
        if self.file is not None:
            self.file.close()
            self.file = None


def format_time(seconds: Union[int, float]) -> str:
    """Human-readable duration: '45s', '3m 05s', '1h 02m 03s', '2d 03h 04m'."""
    s = int(np.rint(seconds))
    if s < 60:
        return f"{s}s"
    if s < 60 * 60:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 24 * 60 * 60:
        return f"{s // 3600}h {(s // 60) % 60:02d}m {s % 60:02d}s"
    return f"{s // 86400}d {(s // 3600) % 24:02d}h {(s // 60) % 60:02d}m"


def format_time_brief(seconds: Union[int, float]) -> str:
    """Two most significant units only: '45s', '3m 05s', '1h 02m', '2d 03h'."""
    return " ".join(format_time(seconds).split()[:2])


_CTYPES_BY_DTYPE = {
    "float32": ctypes.c_float, "float64": ctypes.c_double,
    "int8": ctypes.c_int8, "int16": ctypes.c_int16, "int32": ctypes.c_int32, "int64": ctypes.c_int64,
    "uint8": ctypes.c_uint8, "uint16": ctypes.c_uint16, "uint32": ctypes.c_uint32, "uint64": ctypes.c_uint64,
}


def get_dtype_and_ctype(type_obj: Any) -> Tuple[np.dtype, Any]:
    """Numpy dtype and matching ctypes type for a dtype-like (`'float32'`, `np.uint8`, `ctypes.c_int`...)."""
    dtype = np.dtype(type_obj)
    if dtype.name not in _CTYPES_BY_DTYPE:
        raise ValueError(f"no ctypes equivalent for dtype {dtype.name}; use one of {sorted(_CTYPES_BY_DTYPE)}")
    ctype = _CTYPES_BY_DTYPE[dtype.name]
    assert dtype.itemsize == ctypes.sizeof(ctype)
    return dtype, ctype


# ---------------------------------------------------------------------------------------------
# Objects by dotted name (the plugin seam of the reference training code)

_NAME_SHORTHANDS = {"np.": "numpy.", "tf.": "tensorflow."}


def _expand_shorthand(obj_name: str) -> str:
    for short, full in _NAME_SHORTHANDS.items():
        if obj_name.startswith(short):
            return full + obj_name[len(short):]
    return obj_name


def get_obj_from_module(module: types.ModuleType, obj_name: str) -> Any:
    """Follow a dotted attribute path (`'A.b'`) inside `module`; '' returns the module itself."""
    obj: Any = module
    if obj_name:
        for part in obj_name.split("."):
            obj = getattr(obj, part)
    return obj


def _is_missing_module(err: ModuleNotFoundError, module_name: str) -> bool:
    """True if `err` says `module_name` (or a parent package of it) does not exist.

    An import error raised *inside* an existing module is a real bug and must not be hidden.
    """
    missing = err.name or ""
    return missing == module_name or module_name.startswith(missing + ".")


def get_module_from_obj_name(obj_name: str) -> Tuple[types.ModuleType, str]:
    """Split a dotted name into (imported module, attribute path inside it).

    The longest importable module prefix wins: `a.b.c.D` tries module `a.b.c.D`, then `a.b.c`
    (attribute `D`), then `a.b` (attribute path `c.D`), and so on.
    """
    if not isinstance(obj_name, str) or not obj_name:
        raise ValueError(f"expected a dotted name such as 'package.module.Name', got {obj_name!r}")
    obj_name = _expand_shorthand(obj_name)
    parts = obj_name.split(".")
    for split in range(len(parts), 0, -1):
        module_name = ".".join(parts[:split])
        local_name = ".".join(parts[split:])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if _is_missing_module(err, module_name):
                continue
            raise
        try:
            get_obj_from_module(module, local_name)
        except AttributeError:
            continue
        return module, local_name
    raise ImportError(f"cannot find '{obj_name}': no importable module defines it; check the name and that its "
                      f"package is on sys.path")


def get_obj_by_name(name: str) -> Any:
    """The object a dotted name refers to, e.g. `'numpy.linalg.norm'` or `'np.float32'`."""
    module, obj_name = get_module_from_obj_name(name)
    return get_obj_from_module(module, obj_name)


def call_func_by_name(*args: Any, func_name: Optional[str] = None, **kwargs: Any) -> Any:
    """Call the function (or class) named by `func_name` with the given arguments."""
    if func_name is None:
        raise ValueError("call_func_by_name needs func_name='package.module.function'")
    func = get_obj_by_name(func_name)
    if not callable(func):
        raise TypeError(f"'{func_name}' is not callable (it is a {type(func).__name__})")
    return func(*args, **kwargs)


def construct_class_by_name(*args: Any, class_name: Optional[str] = None, **kwargs: Any) -> Any:
    """Instantiate the class named by `class_name` with the given arguments."""
    if class_name is None:
        raise ValueError("construct_class_by_name needs class_name='package.module.Class'")
    return call_func_by_name(*args, func_name=class_name, **kwargs)


def get_module_dir_by_obj_name(obj_name: str) -> str:
    """Directory of the source file of the module that defines `obj_name`."""
    module, _ = get_module_from_obj_name(obj_name)
    return os.path.dirname(os.path.abspath(module.__file__))


def is_top_level_function(obj: Any) -> bool:
    """True for a function defined at the top level of its module (reachable by dotted name)."""
    return callable(obj) and obj.__name__ in sys.modules[obj.__module__].__dict__


def get_top_level_function_name(obj: Any) -> str:
    """Dotted name `module.function` of a top-level function (the inverse of `get_obj_by_name`)."""
    if not is_top_level_function(obj):
        raise ValueError(f"{obj!r} is not a top-level function of its module")
    module = obj.__module__
    if module == "__main__":
        module = os.path.splitext(os.path.basename(sys.modules[module].__file__))[0]
    return module + "." + obj.__name__


# ---------------------------------------------------------------------------------------------
# Cache directory

_cache_dir_override: Optional[str] = None


def set_cache_dir(path: Optional[str]) -> None:
    """Use `path` as the cache root for this process (None restores the default lookup)."""
    global _cache_dir_override
    _cache_dir_override = path


def make_cache_dir_path(*paths: str) -> str:
    """Path under the dnnlib cache root (not created).

    Root: `set_cache_dir()` value, else `$DNNLIB_CACHE_DIR`, else `$HOME/.cache/dnnlib`, else
    `%USERPROFILE%/.cache/dnnlib`, else `<tempdir>/.cache/dnnlib`.
    """
    if _cache_dir_override is not None:
        return os.path.join(_cache_dir_override, *paths)
    if os.environ.get("DNNLIB_CACHE_DIR"):
        return os.path.join(os.environ["DNNLIB_CACHE_DIR"], *paths)
    for home_var in ("HOME", "USERPROFILE"):
        if os.environ.get(home_var):
            return os.path.join(os.environ[home_var], ".cache", "dnnlib", *paths)
    return os.path.join(tempfile.gettempdir(), ".cache", "dnnlib", *paths)


# ---------------------------------------------------------------------------------------------
# URLs

class DownloadError(OSError):
    """A URL could not be fetched and no cached copy exists; the message says where to put one."""


def is_url(obj: Any, allow_file_urls: bool = False) -> bool:
    """True for an `http(s)://host/...` string (and `file://...` when `allow_file_urls`)."""
    if not isinstance(obj, str) or "://" not in obj:
        return False
    if allow_file_urls and obj.startswith("file://"):
        return True
    try:
        parsed = urllib.parse.urlparse(obj)
    except ValueError:
        return False
    return bool(parsed.scheme) and bool(parsed.netloc) and parsed.scheme != "file"


def url_cache_filename(url: str) -> str:
    """Name of the cached copy of `url`: `<md5 hex of the full URL>_<last path component>`.

    The last component of the URL path (query and fragment dropped) is kept readable: every
    character outside `A-Z a-z 0-9 . _ -` becomes `_`; an empty name becomes `download`.
    Example: `https://host/a/ffhq.pkl` → `<md5>_ffhq.pkl`.
    """
    digest = hashlib.md5(url.encode("utf-8")).hexdigest()
    last = urllib.parse.unquote(urllib.parse.urlparse(url).path.rstrip("/").rsplit("/", 1)[-1])
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", last)[:128] or "download"
    return f"{digest}_{safe}"


def _file_url_to_path(url: str) -> str:
    """Local path of a `file://` URL, including Windows forms such as `file:///C:/dir/x.pkl`."""
    parsed = urllib.parse.urlparse(url)
    path = urllib.request.url2pathname(parsed.path)
    if parsed.netloc and parsed.netloc != "localhost":
        path = "//" + parsed.netloc + path  # UNC share
    if re.match(r"^[/\\][A-Za-z]:", path):
        path = path[1:]  # '/C:/x' -> 'C:/x'
    return path


def _download(url: str, num_attempts: int, verbose: bool) -> bytes:
    """Fetch `url`, retrying transient failures; raises the last error after `num_attempts`."""
    last_error: Optional[BaseException] = None
    for attempt in range(max(1, num_attempts)):
        if attempt:
            time.sleep(min(1.0 * attempt, 5.0))
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "dnnlib-compatible/1.0"})
            with urllib.request.urlopen(request, timeout=60) as response:
                data = response.read()
            if not data:
                raise OSError("server returned an empty file")
            return data
        except urllib.error.HTTPError as err:
            last_error = err
            if 400 <= err.code < 500 and err.code not in (408, 429):
                break  # the resource is not there; retrying will not help
        except (urllib.error.URLError, OSError, ValueError) as err:
            last_error = err
        if verbose:
            print(f"Download attempt {attempt + 1}/{num_attempts} of {url} failed: {_reason(last_error)}",
                  file=sys.stderr, flush=True)
    assert last_error is not None
    raise last_error


def _reason(err: Optional[BaseException]) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return str(err.reason)
    return str(err)


def _write_cache_file(path: str, data: bytes) -> None:
    """Store a download atomically so a crash never leaves a truncated cache entry."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=".download.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
        raise


def _find_cached(cache_dir: str, cache_path: str) -> Optional[str]:
    """The cached copy of a URL: our exact name, else the single `<md5>_*` file in `cache_dir`.

    The fallback reuses downloads made by other dnnlib-compatible code that sanitises the
    file-name part differently but uses the same `<md5 of URL>_` prefix.
    """
    if os.path.isfile(cache_path):
        return cache_path
    prefix = os.path.basename(cache_path).split("_", 1)[0] + "_"
    try:
        candidates = [os.path.join(cache_dir, name) for name in os.listdir(cache_dir) if name.startswith(prefix)]
    except OSError:
        return None
    candidates = [path for path in candidates if os.path.isfile(path)]
    return candidates[0] if len(candidates) == 1 else None


def open_url(url: str, cache_dir: Optional[str] = None, num_attempts: int = 10, verbose: bool = True,
             return_filename: bool = False, cache: bool = True) -> Union[IO[bytes], str]:
    """Open a local path, `file://` URL or http(s) URL as a binary file object.

    http(s) downloads are cached in `cache_dir` (default `make_cache_dir_path('downloads')`,
    i.e. honouring `$DNNLIB_CACHE_DIR`) under the name given by `url_cache_filename(url)`; a
    cached copy is used without touching the network, so a file put there by hand works
    offline (a single `<md5>_<anything>` file is accepted too, as written by other
    dnnlib-compatible code). `return_filename=True` returns the local path instead of an open file (this needs
    `cache=True` for URLs). Failures raise one error saying what to do: `FileNotFoundError` for
    a missing local file, `DownloadError` (an `OSError`) naming the URL and the cache path.
    """
    if not isinstance(url, (str, os.PathLike)):
        raise TypeError(f"open_url expects a path or URL string, got {type(url).__name__}")
    if num_attempts < 1:
        raise ValueError(f"num_attempts must be at least 1, got {num_attempts}")
    url = os.fspath(url)

    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url):
        return _open_local(url, return_filename)
    if url.startswith("file://"):
        return _open_local(_file_url_to_path(url), return_filename)
    if not is_url(url):
        raise ValueError(f"unsupported URL {url!r}: use a local path, file://, http:// or https://")
    if return_filename and not cache:
        raise ValueError("open_url(return_filename=True) needs cache=True for URLs: the file must exist on disk")

    if cache_dir is None:
        cache_dir = make_cache_dir_path("downloads")
    cache_path = os.path.join(cache_dir, url_cache_filename(url))
    cached = _find_cached(cache_dir, cache_path) if cache else None
    if cached is not None:
        return cached if return_filename else open(cached, "rb")

    if verbose:
        print(f"Downloading {url} ...", end="", flush=True)
    try:
        data = _download(url, num_attempts, verbose)
    except Exception as err:
        if verbose:
            print(" failed", flush=True)
        raise DownloadError(f"could not download {url} ({_reason(err)}); if this machine is offline, fetch the "
                            f"file elsewhere and save it as {cache_path} (set DNNLIB_CACHE_DIR to change the "
                            f"cache directory)") from err
    if verbose:
        print(" done", flush=True)

    if cache:
        try:
            _write_cache_file(cache_path, data)
        except OSError as err:
            if return_filename:
                raise DownloadError(f"downloaded {url} but could not store it at {cache_path} ({err}); make the "
                                    f"cache directory writable or set DNNLIB_CACHE_DIR") from err
        else:
            return cache_path if return_filename else open(cache_path, "rb")
    return io.BytesIO(data)


def _open_local(path: str, return_filename: bool) -> Union[IO[bytes], str]:
    if not os.path.isfile(path):
        what = "is a directory, not a file" if os.path.isdir(path) else "does not exist"
        raise FileNotFoundError(f"{path} {what}; give the path of an existing file or an http(s) URL")
    return path if return_filename else open(path, "rb")
