"""Build-once loader for the optional compiled (C++/CUDA) op plugins.

`get_plugin` compiles a set of sources with ninja through `torch.utils.cpp_extension.load`, in a
build directory keyed by a hash of the source contents, and caches the imported module for the
life of the process. A build that fails is remembered per module: it is reported once (with the
reason) through `warnings.warn` and never retried in this process, so callers can fall back to the
pure-PyTorch reference path without paying for a compiler run on every call.
"""
import hashlib
import os
import shutil
import tempfile
import types
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

import torch
import torch.utils.cpp_extension

verbosity = "brief"  # 'none' | 'brief' (one status line per build) | 'full' (compiler output too)

_loaded_plugins: Dict[str, types.ModuleType] = {}
_failed_plugins: Dict[str, str] = {}  # module name -> reason the build failed
_checked_on: Set[Tuple[str, str]] = set()  # (module name, device) pairs whose self-test passed


class PluginBuildError(RuntimeError):
    """Raised when a plugin cannot be built; the message says why."""


def _content_hash(paths: Sequence[str], extra: str) -> str:
    digest = hashlib.md5()
    for path in paths:
        digest.update(os.path.basename(path).encode())
        with open(path, "rb") as f:
            digest.update(f.read())
    digest.update(extra.encode())
    return digest.hexdigest()


def _build_root() -> str:
    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    return root if root else torch.utils.cpp_extension.get_default_build_root()


def _stage_sources(paths: Sequence[str], build_dir: str) -> None:
    """Copy sources into `build_dir` atomically, so the directory is either complete or absent."""
    if os.path.isdir(build_dir):
        return
    os.makedirs(os.path.dirname(build_dir), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".staging-", dir=os.path.dirname(build_dir))
    try:
        for path in paths:
            shutil.copyfile(path, os.path.join(staging, os.path.basename(path)))
        try:
            os.replace(staging, build_dir)
        except OSError:
            if not os.path.isdir(build_dir):  # another process may have won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _short_reason(err: BaseException) -> str:
    text = str(err).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    # The last non-empty line of a compiler failure usually names the failing step; keep it short.
    summary = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
    return f"{type(err).__name__}: {summary[:500]}"


def get_plugin(module_name: str, sources: Sequence[str], headers: Optional[Sequence[str]] = None,
               source_dir: Optional[str] = None, **build_kwargs) -> types.ModuleType:
    """Compile (once) and import the extension `module_name` built from `sources`.

    `sources` and `headers` are file names, relative to `source_dir` when given. Extra keyword
    arguments go to `torch.utils.cpp_extension.load` (e.g. `extra_cuda_cflags`). Raises
    `PluginBuildError` if the build fails; the failure is warned about once and remembered, so
    later calls raise again immediately without recompiling.
    """
    if module_name in _loaded_plugins:
        return _loaded_plugins[module_name]
    if module_name in _failed_plugins:
        raise PluginBuildError(_failed_plugins[module_name])

    if verbosity == "full":
        print(f'Setting up PyTorch plugin "{module_name}"...')
    elif verbosity == "brief":
        print(f'Setting up PyTorch plugin "{module_name}"... ', end="", flush=True)
    try:
        module = _build_and_import(module_name, list(sources), list(headers or []), source_dir, build_kwargs)
    except Exception as err:  # compiler, ninja, missing toolkit, import error: all mean "unavailable"
        reason = _short_reason(err)
        _failed_plugins[module_name] = reason
        if verbosity in ("brief", "full"):
            print("Failed!")
        warnings.warn(f'Could not build the compiled plugin "{module_name}" ({reason}); using the '
                      f'pure-PyTorch reference implementation instead, which is slower but gives the same results.',
                      stacklevel=2)
        raise PluginBuildError(reason) from err
    if verbosity == "brief":
        print("Done.")
    _loaded_plugins[module_name] = module
    return module


def try_get_plugin(module_name: str, sources: Sequence[str], headers: Optional[Sequence[str]] = None,
                   source_dir: Optional[str] = None, **build_kwargs) -> Optional[types.ModuleType]:
    """Like `get_plugin`, but returns None instead of raising when the plugin is unavailable."""
    try:
        return get_plugin(module_name, sources, headers=headers, source_dir=source_dir, **build_kwargs)
    except PluginBuildError:
        return None


def disable_plugin(module_name: str, error: Union[BaseException, str]) -> None:
    """Give up on a plugin that built but does not work here (e.g. no kernel image for this GPU).

    Warns once; afterwards `get_plugin` raises and `try_get_plugin` returns None for this module.
    """
    if module_name in _failed_plugins:
        return
    reason = _short_reason(error) if isinstance(error, BaseException) else str(error)
    _loaded_plugins.pop(module_name, None)
    _failed_plugins[module_name] = reason
    warnings.warn(f'The compiled plugin "{module_name}" does not run on this machine ({reason}); using the '
                  f'pure-PyTorch reference implementation instead, which is slower but gives the same results.',
                  stacklevel=2)


def checked_plugin(module_name: str, load: Callable[[], Optional[types.ModuleType]],
                   self_test: Callable[[types.ModuleType, torch.device], None],
                   device: torch.device) -> Optional[types.ModuleType]:
    """The plugin from `load()`, once `self_test(plugin, device)` has passed on `device`; else None.

    A plugin can build and still fail at run time (e.g. no kernel image for this GPU): a failing
    self-test (a RuntimeError) disables it with one warning, and the reference path is used.
    """
    plugin = load()
    key = (module_name, str(device))
    if plugin is None or key in _checked_on:
        return plugin
    try:
        self_test(plugin, device)
    except RuntimeError as err:
        disable_plugin(module_name, err)
        return None
    _checked_on.add(key)
    return plugin


def _build_and_import(module_name: str, sources: List[str], headers: List[str], source_dir: Optional[str],
                      build_kwargs: dict) -> types.ModuleType:
    if source_dir is not None:
        sources = [os.path.join(source_dir, s) for s in sources]
        headers = [os.path.join(source_dir, h) for h in headers]
    for path in sources + headers:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"plugin source file {path} does not exist")
    if any(p.endswith(".cu") for p in sources) and torch.utils.cpp_extension.CUDA_HOME is None:
        raise RuntimeError("no CUDA toolkit found (nvcc); install one or set CUDA_HOME")
    torch.utils.cpp_extension.verify_ninja_availability()

    # Key the build by everything that changes the binary: sources, flags, toolchain and target GPU.
    extra = f"{sorted(build_kwargs.items())!r}|torch {torch.__version__}|cuda {torch.version.cuda}"
    extra += f"|arch {os.environ.get('TORCH_CUDA_ARCH_LIST', '')}"
    if torch.cuda.is_available():
        extra += f"|gpu {torch.cuda.get_device_capability()}"
    digest = _content_hash(sources + headers, extra)
    build_dir = os.path.join(_build_root(), f"{module_name}-{digest}")
    _stage_sources(sources + headers, build_dir)
    staged_sources = [os.path.join(build_dir, os.path.basename(s)) for s in sources]
    return torch.utils.cpp_extension.load(name=module_name, sources=staged_sources, build_directory=build_dir,
                                          verbose=(verbosity == "full"), **build_kwargs)
