"""nbval settings for the lessons, loaded as a pytest plugin by the Makefile's notebook run
(`-p tests.notebooks.nbval_plugin`), so no test file sits in the students' file browser.

nbval waits a fixed 5 seconds for a cell's output once the cell has finished; a lesson's
cell may legitimately be quiet for longer (a lab booting, builds settling on the demo
preset), so the wait is raised here. A notebook with no code cells (the start page) gives
nbval nothing to run: it is reported as skipped, not silently absent."""
from __future__ import annotations

import json
from pathlib import Path

import nbval.plugin as _plugin
import pytest

OUTPUT_WAIT = 60   # seconds

_init = _plugin.IPyNbCell.__init__


def _with_longer_output_wait(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    self.output_timeout = OUTPUT_WAIT


_plugin.IPyNbCell.__init__ = _with_longer_output_wait


def pytest_report_header(config: pytest.Config) -> str:
    return f"nbval: output wait {OUTPUT_WAIT} s (tests/notebooks/nbval_plugin.py)"


class MarkdownOnly(pytest.Item):
    def runtest(self) -> None:
        pytest.skip("markdown only: no cells for nbval to run (tests/test_notebooks.py "
                    "checks its links)")


class MarkdownOnlyNotebook(pytest.File):
    def collect(self):
        yield MarkdownOnly.from_parent(self, name="markdown-only")


def _has_code(path: Path) -> bool:
    return any(c["cell_type"] == "code" for c in json.loads(path.read_text())["cells"])


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    opts = parent.config.option
    if (opts.nbval or opts.nbval_lax) and file_path.suffix == ".ipynb" \
            and not _has_code(file_path):
        return MarkdownOnlyNotebook.from_parent(parent, path=file_path)
    return None
