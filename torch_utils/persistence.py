"""Classes whose source code travels inside their pickles (the reference network-pickle protocol).

Decorating a class with `@persistent_class` makes every instance pickle as a call to
`torch_utils.persistence._reconstruct_persistent_obj(meta)`, where `meta` is a plain dict::

    {'type': 'class', 'version': 6, 'module_src': <full source of the defining module>,
     'class_name': <class name>, 'state': <instance __dict__>}

Unpickling executes `module_src` in a fresh module named `_imported_module_<uuid hex>` (once per
distinct source text), looks the class up by name and restores the state. So a pickle can be
loaded without the defining module being importable, exactly like official StyleGAN pickles,
which this module reads and writes. The constructor arguments of every instance are recorded
(`init_args`, `init_kwargs`) so a network can be rebuilt with `type(obj)(**obj.init_kwargs)`.

Loading a pickle runs the code inside it: only load pickles you trust.
"""
import copy
import inspect
import io
import pickle
import sys
import types
import uuid
from typing import Any, Callable, Dict, List, Set

import dnnlib

__all__ = ["persistent_class", "is_persistent", "import_hook"]

_version = 6  # the only meta version that the reference code writes and accepts
_decorators: Set[type] = set()  # every class returned by persistent_class()
_import_hooks: List[Callable[[dnnlib.EasyDict], dnnlib.EasyDict]] = []
_module_to_src_dict: Dict[types.ModuleType, str] = {}
_src_to_module_dict: Dict[str, types.ModuleType] = {}


# ---------------------------------------------------------------------------------------------
# Decorator

def persistent_class(orig_class: type) -> type:
    """Return a subclass of `orig_class` whose instances carry their module's source when pickled.

    Use as a decorator on a top-level class of a module that `inspect` can read (a .py file),
    or just in time: `cls = persistent_class(SomeClass); obj = cls(...)`. Applying it to a class
    that is already persistent returns that class unchanged. Other classes of the same module that
    end up inside a persistent object must be decorated too; module-level functions need not be.
    """
    if not inspect.isclass(orig_class):
        raise TypeError(f"persistent_class expects a class, got {type(orig_class).__name__}")
    if is_persistent(orig_class):
        return orig_class
    if orig_class.__module__ not in sys.modules:
        raise ValueError(f"cannot make {orig_class.__name__} persistent: its module {orig_class.__module__!r} "
                         f"is not in sys.modules; define the class in an imported module")
    orig_module = sys.modules[orig_class.__module__]
    orig_module_src = _module_to_src(orig_module)
    orig_class_name = orig_class.__name__

    class Decorator(orig_class):
        _orig_module_src = orig_module_src
        _orig_class_name = orig_class_name

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._init_args = copy.deepcopy(args)
            self._init_kwargs = copy.deepcopy(kwargs)
            if orig_class_name not in orig_module.__dict__:
                raise TypeError(f"persistent class {orig_class_name} must be defined at the top level of "
                                f"module {orig_module.__name__!r}, so that unpickling can find it by name")
            _check_pickleable(self.__reduce__())

        @property
        def init_args(self) -> tuple:
            """The positional constructor arguments (a deep copy)."""
            return copy.deepcopy(self._init_args)

        @property
        def init_kwargs(self) -> dnnlib.EasyDict:
            """The keyword constructor arguments (a deep copy, as an EasyDict)."""
            return dnnlib.EasyDict(copy.deepcopy(self._init_kwargs))

        def __reduce__(self):
            fields = list(super().__reduce__())
            fields += [None] * max(3 - len(fields), 0)
            if fields[0] is not _reconstruct_persistent_obj:  # a persistent base class may have done it
                meta = dict(type="class", version=_version, module_src=self._orig_module_src,
                            class_name=self._orig_class_name, state=fields[2])
                fields[0] = _reconstruct_persistent_obj
                fields[1] = (meta,)
                fields[2] = None
            return tuple(fields)

    Decorator.__name__ = orig_class_name
    Decorator.__doc__ = orig_class.__doc__
    _decorators.add(Decorator)
    return Decorator


def is_persistent(obj: Any) -> bool:
    """True if `obj` is a class made by `persistent_class`, or an instance of one."""
    try:
        if obj in _decorators:
            return True
    except TypeError:  # unhashable objects
        pass
    return type(obj) in _decorators


def import_hook(hook: Callable[[dnnlib.EasyDict], dnnlib.EasyDict]) -> None:
    """Register `hook(meta) -> meta`, called for every persistent object being unpickled.

    `meta` is an EasyDict with `type, version, module_src, class_name, state` (state also an
    EasyDict); a typical hook edits `meta.module_src` to adapt old source to a changed API.
    Hooks run in registration order and must return the (possibly new) meta.
    """
    if not callable(hook):
        raise TypeError(f"import_hook expects a callable, got {type(hook).__name__}")
    _import_hooks.append(hook)


# ---------------------------------------------------------------------------------------------
# Unpickling

def _reconstruct_persistent_obj(meta: dict) -> Any:
    """Rebuild a persistent object from its pickled `meta` (the global that pickles reference)."""
    meta = dnnlib.EasyDict(meta)
    meta.state = dnnlib.EasyDict(meta.state if meta.get("state") is not None else {})
    for hook in _import_hooks:
        meta = hook(meta)
        if meta is None:
            raise TypeError(f"import hook {hook!r} returned None; hooks must return the meta they were given")

    if meta.version != _version:
        raise ValueError(f"unsupported persistent-object version {meta.version!r} (this code reads version "
                         f"{_version}); the pickle was written by an incompatible torch_utils.persistence")
    if meta.type != "class":
        raise ValueError(f"unsupported persistent-object type {meta.type!r}; expected 'class'")
    module = _src_to_module(meta.module_src)
    if meta.class_name not in module.__dict__:
        raise ValueError(f"the source embedded in the pickle does not define class {meta.class_name!r}")
    cls = persistent_class(module.__dict__[meta.class_name])

    obj = cls.__new__(cls)
    setstate = getattr(obj, "__setstate__", None)
    if callable(setstate):
        setstate(meta.state)  # torch.nn.Module also fills in attributes newer torch versions expect
    else:
        obj.__dict__.update(meta.state)
    return obj


# ---------------------------------------------------------------------------------------------
# Module <-> source cache

def _module_to_src(module: types.ModuleType) -> str:
    """Full source text of `module`; cached, so all classes of a module share one `str` object."""
    src = _module_to_src_dict.get(module)
    if src is None:
        try:
            src = inspect.getsource(module)
        except (OSError, TypeError) as err:
            raise ValueError(f"cannot read the source of module {module.__name__!r} ({err}); persistent classes "
                             f"must be defined in a .py file") from err
        _module_to_src_dict[module] = src
        _src_to_module_dict[src] = module
    return src


def _src_to_module(src: str) -> types.ModuleType:
    """The module built from exactly this source text, executing it on first use.

    The new module is registered in `sys.modules` and in both caches *before* executing, so the
    `@persistent_class` decorators inside the source find their source without `inspect`.
    """
    module = _src_to_module_dict.get(src)
    if module is None:
        module_name = "_imported_module_" + uuid.uuid4().hex
        module = types.ModuleType(module_name)
        sys.modules[module_name] = module
        _module_to_src_dict[module] = src
        _src_to_module_dict[src] = module
        try:
            exec(src, module.__dict__)  # noqa: S102 - this is what loading a network pickle means
        except BaseException as err:
            del _src_to_module_dict[src], _module_to_src_dict[module], sys.modules[module_name]
            if isinstance(err, Exception):
                err.add_note("(raised while executing the network source embedded in a pickle; the code it "
                             "imports must be installed in this environment)")
            raise
    return module


# ---------------------------------------------------------------------------------------------
# Early pickleability check

_ACCEPTED_TYPE_NAMES = {"numpy.ndarray", "torch.Tensor", "torch.nn.parameter.Parameter"}


def _check_pickleable(obj: Any) -> None:
    """Raise now, not at snapshot time, if `obj` (a reduce value) contains something unpicklable.

    Containers are walked; primitives, arrays, tensors and persistent objects are trusted without
    pickling; everything else is pickled into memory.
    """
    def untrusted_parts(x: Any) -> Any:
        if isinstance(x, (list, tuple, set)):
            return [untrusted_parts(item) for item in x]
        if isinstance(x, dict):
            return [[untrusted_parts(key), untrusted_parts(value)] for key, value in x.items()]
        if x is None or isinstance(x, (str, int, float, bool, bytes, bytearray)):
            return None
        if f"{type(x).__module__}.{type(x).__name__}" in _ACCEPTED_TYPE_NAMES:
            return None
        if is_persistent(x):
            return None
        return x

    try:
        with io.BytesIO() as buffer:
            pickle.dump(untrusted_parts(obj), buffer)
    except Exception as err:
        raise pickle.PicklingError(f"a persistent object holds something that cannot be pickled ({err}); "
                                   f"constructor arguments and attributes must be picklable, and classes "
                                   f"instantiated inside it must be @persistent_class too") from err
