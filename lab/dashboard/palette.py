"""The dashboard's colours and shapes, in one place: a message's kind (the legend), a
service's state, an instance's task state, and the notes written beside a node."""
from __future__ import annotations

__all__ = ["KIND_COLORS", "DROP_COLOR", "OTHER_COLOR", "KIND_MARKERS", "DASHES",
           "TASK_STATE_COLORS", "UNKNOWN_STATE_COLOR", "NODE_STATE_COLORS",
           "STATE_SEVERITY", "IN_PROGRESS_COLOR", "ACTIVE_COLOR", "ERROR_COLOR",
           "LABEL_COLOR", "CAPTION_COLOR"]

KIND_COLORS = {"cast": "#1f77b4", "call": "#ff7f0e", "reply": "#2ca02c", "fanout": "#9467bd",
               "notification": "#7f7f7f"}
DROP_COLOR = "#d62728"
OTHER_COLOR = "#17becf"            # a kind outside KIND_COLORS
KIND_MARKERS = {"cast": "circle", "call": "square", "reply": "triangle", "fanout": "diamond",
                "notification": "inverted_triangle"}
DASHES = {"call": "dashed", "reply": "dotted"}          # everything else: solid
TASK_STATE_COLORS = {"scheduling": "#9ecae1", "networking": "#6baed6",
                     "block_device_mapping": "#4292c6", "spawning": "#2171b5",
                     "ACTIVE": "#2ca02c", "ERROR": "#d62728", "DELETED": "#7f7f7f",
                     # moving an instance (issue #7)
                     "RESIZE": "#9467bd", "VERIFY_RESIZE": "#bcbd22",
                     "REVERT_RESIZE": "#8c564b", "REBUILD": "#17becf"}
UNKNOWN_STATE_COLOR = "#c7c7c7"
NODE_STATE_COLORS = {"up": "#2e8b57", "down": "#d62728", "paused": "#b8860b",
                     "failing": "#ff7f0e", "unreachable": "#8c564b", "bus": "#555555"}
# A group of computes takes the colour of its worst host's state.
STATE_SEVERITY = ("up", "failing", "paused", "unreachable", "down")
IN_PROGRESS_COLOR, ACTIVE_COLOR, ERROR_COLOR = "#ff7f0e", "#2ca02c", "#d62728"
# Names and captions beside the nodes: dark on the page's white, whatever the node's fill.
LABEL_COLOR, CAPTION_COLOR = "#1a1a1a", "#444444"
