"""nbval settings for the lessons. nbval waits a fixed 5 seconds for a cell's output
once the cell has finished; a lesson's cell may legitimately be quiet for longer (a
lab booting, builds settling on the demo preset), so the wait is raised here."""
from __future__ import annotations

import nbval.plugin as _plugin

OUTPUT_WAIT = 60   # seconds

_init = _plugin.IPyNbCell.__init__


def _with_longer_output_wait(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    self.output_timeout = OUTPUT_WAIT


_plugin.IPyNbCell.__init__ = _with_longer_output_wait
