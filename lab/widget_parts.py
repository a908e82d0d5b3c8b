"""The pieces the control panel (widgets.py) is built of: a service's state cell (its name
and a coloured badge; every text escaped, since an HTML widget's value is markup), rows
that wrap on a narrow screen, ``CheckList`` (options chosen as buttons that read from
across a room) and the instances table."""
from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
import traitlets

__all__ = ["COLORS", "CHECK", "CheckList", "badge", "state_html", "state_cell", "row",
           "labelled", "instances_html"]

COLORS = {"up": "#2e7d32", "failing": "#bf360c", "paused": "#1565c0", "down": "#c62828",
          "unreachable": "#6a1b9a", "stopped": "#616161"}


def badge(state: str) -> str:
    return (f"<span style='background:{COLORS.get(state, '#555')};color:white;"
            f"padding:2px 8px;border-radius:8px;font-size:14px'>{html.escape(state)}</span>")


def state_html(name: str, state: str, detail: str = "") -> str:
    """A row's name in bold and its state's badge, ``detail`` on a second line in small
    print (so the row stays narrow): all of it escaped (an HTML widget's value is markup;
    a host or a message is not)."""
    tail = (f"<div style='font-size:12px;color:#444;line-height:1.2'>{html.escape(detail)}"
            f"</div>") if detail else ""
    return f"<div style='line-height:1.4'><b>{html.escape(name)}</b> {badge(state)}</div>{tail}"


def state_cell(width: str) -> w.HTML:
    """A fixed-width cell: a badge changing from "up" to "paused" moves nothing."""
    return w.HTML(layout=w.Layout(width=width, flex="0 0 auto"))


def row(children: list[w.Widget], css: str = "lab-row") -> w.HBox:
    """A row that wraps on a narrow screen (a projector) instead of squashing; ``css``
    names it on the page (the browser tests find the rows by it)."""
    row = w.HBox(children, layout=w.Layout(flex_flow="row wrap", align_items="center"))
    row.add_class(css)
    return row


def labelled(label: str, widget: w.Widget) -> w.HBox:
    return w.HBox([w.Label(label, layout=w.Layout(width="90px")), widget])


CHECK = "\u2713 "       # what a chosen option's button starts with


class CheckList(w.VBox):
    """Options to choose several of, as buttons: a chosen one is green with a check mark
    ("✓ RamFilter"), the others plain, so the choice reads from across a room (a
    SelectMultiple's grey highlight did not). ``value`` is the tuple of chosen options in
    the options' order, as a SelectMultiple's; ``disabled`` disables every button."""

    value = traitlets.Tuple()
    disabled = traitlets.Bool(False)

    def __init__(self, options: list[str], description: str):
        self._painting = False
        self.buttons = {o: w.ToggleButton(description=o, tooltip=o,
                                          layout=w.Layout(width="auto", margin="1px 2px"))
                        for o in options}
        super().__init__([w.Label(description), w.HBox(list(self.buttons.values()),
                                                       layout=w.Layout(flex_flow="row wrap"))])
        self.add_class("lab-checklist")
        for button in self.buttons.values():
            button.observe(self._toggled, names="value")
        self.observe(self._paint, names="value")
        self.observe(lambda change: [setattr(b, "disabled", change["new"])
                                     for b in self.buttons.values()], names="disabled")

    def _toggled(self, _change: dict[str, Any]) -> None:
        if self._painting:  # one new value, not one per button while it is painted
            return
        chosen = tuple(o for o, b in self.buttons.items() if b.value)
        if chosen != self.value:
            self.value = chosen

    def _paint(self, change: dict[str, Any]) -> None:
        self._painting = True
        try:
            for option, button in self.buttons.items():
                on = option in change["new"]
                button.value = on
                button.description = f"{CHECK}{option}" if on else option
                button.button_style = "success" if on else ""
        finally:
            self._painting = False


def instances_html(rows: list[dict[str, Any]], limit: int = 50) -> str:
    th = "<th style='text-align:left;padding:2px 8px;border-bottom:1px solid #999'>"
    head = "".join(f"{th}{h}</th>" for h in ("name", "status", "task state", "host",
                                             "attempts", "fault"))
    body = []
    for r in rows[-limit:]:
        cells = [r["name"], r["status"], r["task_state"], r["host"], str(r["attempts"]),
                 r["fault"][:80]]
        body.append("<tr>" + "".join(f"<td style='padding:0 8px'>{html.escape(c)}</td>"
                                     for c in cells) + "</tr>")
    more = f"<p>({len(rows) - limit} older not shown)</p>" if len(rows) > limit else ""
    return (f"<table style='border-collapse:collapse'><tr>{head}</tr>{''.join(body)}</table>"
            f"{more}")
