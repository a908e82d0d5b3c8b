"""lab.plugin: a class's source is found even when it was typed into a notebook cell
(no file: IPython keeps the cell in linecache), and a plugin file loads back."""
from __future__ import annotations

import linecache

import pytest

from lab.plugin import class_source, write_plugin
from orchestrator.scheduler.plugins import PluginError, load_plugin_class

CELL = '''import math

class Packer(BaseWeigher):
    """Fuller is heavier."""

    def weigh(self, host, spec):
        return float(host.memory_mb_used)

print("not part of the class")
'''


def _from_a_cell(name: str = "<ipython-input-7-abc>"):
    linecache.cache[name] = (len(CELL), None, CELL.splitlines(True), name)
    from orchestrator.scheduler.weighers.base import BaseWeigher
    namespace = {"BaseWeigher": BaseWeigher}
    exec(compile(CELL, name, "exec"), namespace)
    return namespace["Packer"]


def test_source_of_a_class_from_a_cell_is_just_the_class():
    source = class_source(_from_a_cell())
    assert source.startswith("class Packer(BaseWeigher):")
    assert "return float(host.memory_mb_used)" in source
    assert "not part of the class" not in source and "import math" not in source


def test_written_plugin_loads_in_a_scheduler(tmp_path):
    path = write_plugin(tmp_path, _from_a_cell("<ipython-input-8-def>"))
    assert path == tmp_path / "plugins" / "Packer.py"
    cls = load_plugin_class(tmp_path, "Packer")
    assert cls.__name__ == "Packer" and cls(None).weigh(type("H", (), {"memory_mb_used": 5})(), {}) == 5.0


def test_a_class_without_any_source_is_a_clear_error():
    cls = type("Nowhere", (), {})
    with pytest.raises(ValueError, match="cannot find the source of class Nowhere"):
        class_source(cls)


def test_bad_plugin_names_and_files(tmp_path):
    with pytest.raises(PluginError):
        load_plugin_class(tmp_path, "not-a-name")
    with pytest.raises(PluginError, match="no plugin file"):
        load_plugin_class(tmp_path, "Missing")
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "Wrong.py").write_text("class Wrong:\n    pass\n")
    with pytest.raises(PluginError, match="must define class Wrong"):
        load_plugin_class(tmp_path, "Wrong")
