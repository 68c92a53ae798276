"""Naming code by import path, so that another node can load it (RA: machine modules by name).

A machine is given as ``(cls_or_path, config)``; a query that travels is a
module-level function named ``"package.module:function"``.  Nothing is ever
pickled: a remote node imports the same path from its own code.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from raft_otp.core.machine import Machine
from raft_otp.errors import BadArgument

MachineSpec = tuple[str, Any]  # ("module:Class", config)


def import_path(obj: Any) -> str:
    """``"module:qualname"`` of a module-level class or function; refuses lambdas/closures."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise BadArgument(f"{obj!r} is not a module-level class or function (no import path)")
    if module == "__main__":
        raise BadArgument(f"{qualname} lives in __main__; other nodes cannot import it")
    return f"{module}:{qualname}"


def resolve(path: str) -> Any:
    """Import ``"module:attr.attr"`` and return the object."""
    if not isinstance(path, str) or ":" not in path:
        raise BadArgument(f"import path must look like 'module:name', got {path!r}")
    module_name, _, attr_path = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise BadArgument(f"cannot import module {module_name!r} for {path!r}: {exc}") from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise BadArgument(f"{path!r}: {part!r} not found") from None
    return obj


def machine_spec(machine: Any) -> MachineSpec:
    """Normalise what a caller passed as a machine into ``("module:Class", config)``.

    Accepts ``(cls, config)``, ``("module:Class", config)``, a bare class or path
    (config None).  The class must subclass :class:`Machine`.  Classes defined in
    ``__main__`` are accepted for single-node use (path ``__main__:Name``)."""
    if isinstance(machine, tuple) and len(machine) == 2:
        target, config = machine
    else:
        target, config = machine, None
    if isinstance(target, str):
        cls = resolve(target)
        path = target
    elif isinstance(target, type):
        cls = target
        module = getattr(cls, "__module__", "")
        qualname = getattr(cls, "__qualname__", "")
        if "<" in qualname:
            raise BadArgument(f"machine class {qualname} is not importable (defined in a function)")
        path = f"{module}:{qualname}"
    else:
        raise BadArgument(f"machine must be (class or 'module:Class', config), got {machine!r}")
    if not (isinstance(cls, type) and issubclass(cls, Machine)):
        raise BadArgument(f"{path} is not a raft_otp.Machine subclass")
    return path, config


def load_machine(spec: MachineSpec) -> Machine:
    """Instantiate the machine named by ``spec`` on this node."""
    path, config = spec
    cls = resolve(path)
    if not (isinstance(cls, type) and issubclass(cls, Machine)):
        raise BadArgument(f"{path} is not a raft_otp.Machine subclass")
    return cls(config)


def query_ref(fun: Any) -> str | Callable[..., Any]:
    """A query as it is sent: a callable stays itself (local only) unless it has an
    import path; strings are import paths and are checked for shape."""
    if isinstance(fun, str):
        if ":" not in fun:
            raise BadArgument(f"query path must look like 'module:function', got {fun!r}")
        return fun
    if callable(fun):
        try:
            return import_path(fun)
        except BadArgument:
            return fun  # lambda/closure: usable only for local servers
    raise BadArgument(f"query must be a callable or 'module:function', got {fun!r}")


_fun_cache: dict[str, Callable[..., Any]] = {}


def resolve_query(fun: str | Callable[..., Any]) -> Callable[..., Any]:
    """The function to call for a query reference (cached per path)."""
    if callable(fun):
        return fun
    f = _fun_cache.get(fun)
    if f is None:
        f = resolve(fun)
        if not callable(f):
            raise BadArgument(f"{fun!r} is not callable")
        _fun_cache[fun] = f
    return f
