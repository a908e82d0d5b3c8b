"""Students' own scheduler classes: a filter or weigher written in a notebook cell is
saved as ``plugins/<ClassName>.py`` in the run directory and loaded here, into the
running scheduler process, without restarting anything.

A plugin file may use ``BaseFilter``, ``BaseWeigher`` and ``normalize`` without importing
them. Its class must be named like the file and subclass one of the two bases."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from .filters.base import BaseFilter
from .weighers.base import BaseWeigher

__all__ = ["PLUGIN_DIR", "PluginError", "plugin_path", "load_plugin_class", "HEADER"]

PLUGIN_DIR = "plugins"
HEADER = ("from orchestrator.scheduler.filters.base import BaseFilter\n"
          "from orchestrator.scheduler.weighers.base import BaseWeigher, normalize\n\n")


class PluginError(ValueError):
    """A plugin file that is missing, broken, or defines no usable class."""


def plugin_path(run_dir: str | Path, name: str) -> Path:
    if not name.isidentifier():
        raise PluginError(f"{name!r} is not a Python class name")
    return Path(run_dir) / PLUGIN_DIR / f"{name}.py"


def load_plugin_class(run_dir: str | Path, name: str) -> type:
    path = plugin_path(run_dir, name)
    if not path.exists():
        raise PluginError(f"no plugin file {path}")
    spec = importlib.util.spec_from_file_location(f"lab_plugin_{name}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the student's code: report it, don't die of it
        raise PluginError(f"{name}: {type(exc).__name__}: {exc}") from None
    cls = getattr(module, name, None)
    if not (isinstance(cls, type) and issubclass(cls, (BaseFilter, BaseWeigher))
            and cls not in (BaseFilter, BaseWeigher)):
        raise PluginError(f"{path.name} must define class {name}(BaseFilter) or "
                          f"class {name}(BaseWeigher)")
    return cls
