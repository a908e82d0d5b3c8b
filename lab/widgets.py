"""The control panel's view: ipywidgets bound to a ``ControlModel``. Thin on purpose: each
widget calls one model method, and ``refresh()`` paints the model's snapshot.

Every control is reachable from code, so a notebook (or nbval, with no browser) can do
``panel.computes["compute1"]["reschedule"].value = 0.5`` or
``panel.services["conductor"]["crash"].click()`` and get the same effect as a person.
Refreshing runs on the kernel's own event loop (``call_later``), never on a thread, and
errors land in the panel's status line, never printed into a cell.

Once the lab is stopped the panel says so, shows every service "stopped", disables every
control and stops repainting: a stopped lab does not come back (start a new one)."""
from __future__ import annotations

import asyncio
import html
import time
from typing import Any, Callable

import ipywidgets as w

from . import widget_parts as parts
from .cluster import LabError
from .controls import SERVICES, STOPPED_MESSAGE, ControlModel
from .widget_parts import CheckList

__all__ = ["ControlPanel", "CheckList", "REFRESH_SECONDS"]

REFRESH_SECONDS = 1.0


class ControlPanel:
    def __init__(self, model: ControlModel, auto_refresh: bool = True):
        self.model = model
        self._painting = False
        self._timer: asyncio.TimerHandle | None = None
        self.status = w.HTML("ready")
        self.last_error: Exception | None = None
        self.computes = {host: self._compute_row(host)
                         for host in model.lab.config.compute_names()}
        self.services = {name: self._service_row(name) for name in SERVICES}
        self.workflow = self._workflow_box()
        self.network = self._network_box()
        self.boot = self._boot_box()
        self.speed = self._speed_box()
        self.move = self._move_box()
        self._computes_box = self._computes_tab()
        self.widget = w.VBox([
            w.HTML("<b>Conductor Lab</b> control panel"), self.status,
            w.Tab(children=[self._computes_box, self._services_tab(), self._workflow_tab(),
                            self._network_tab(), self._boot_tab(), self._move_tab(),
                            self._speed_tab()],
                  titles=["Computes", "Services", "Workflow", "Network", "Boot", "Move",
                          "Speed"]),
        ])
        self.refresh()
        if auto_refresh:
            self.start_auto_refresh()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # -- wiring -------------------------------------------------------------------------------
    def _act(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run one model action; show what happened (or the error) in the status line."""
        if self._painting:
            return
        if not self.model.lab_running():  # a click from code: a person cannot, it is disabled
            self.last_error = LabError(STOPPED_MESSAGE)
            self._show_stopped()
            return
        self.last_error = None
        try:
            fn(*args, **kwargs)
            self.status.value = (f"<span style='color:#2e7d32'>{time.strftime('%H:%M:%S')} "
                                 f"{html.escape(self.model.message)}</span>")
        except Exception as exc:  # shown to the student, never raised into a callback
            self.last_error = exc    # ...and kept for code that drives the panel
            self.status.value = (f"<span style='color:#c62828'>{html.escape(type(exc).__name__)}"
                                 f": {html.escape(str(exc))}</span>")
        self.refresh()

    def _on_value(self, widget: w.Widget, fn: Callable[[Any], Any]) -> w.Widget:
        widget.observe(lambda change: self._act(fn, change["new"]), names="value")
        return widget

    def _button(self, label: str, fn: Callable[[], Any], style: str = "") -> w.Button:
        button = w.Button(description=label, button_style=style,
                          layout=w.Layout(width="auto", flex="0 0 auto", padding="0 10px"))
        button.on_click(lambda _b: self._act(fn))
        return button

    # -- sections -----------------------------------------------------------------------------
    def _compute_row(self, host: str) -> dict[str, w.Widget]:
        m = self.model
        slider = dict(min=0.0, max=1.0, step=0.05, continuous_update=False,
                      readout_format=".0%", style={"description_width": "36px"},
                      layout=w.Layout(width="200px", flex="0 0 auto"))
        return {     # one row of about 820 px: JupyterLab's notebook at its default width
            "state": parts.state_cell("220px"),
            "reschedule": self._on_value(w.FloatSlider(description="fail", **slider),
                                         lambda v: m.set_failure(host, reschedule=v)),
            "fatal": self._on_value(w.FloatSlider(description="fatal", **slider),
                                    lambda v: m.set_failure(host, fatal=v)),
            "crash": self._button("crash", lambda: m.service_action(host, "crash"), "danger"),
            "shutdown": self._button("shut down", lambda: m.service_action(host, "shutdown"),
                                     "warning"),
            "restart": self._button("restart", lambda: m.service_action(host, "restart")),
        }

    def _service_row(self, name: str) -> dict[str, w.Widget]:
        act = self.model.service_action
        return {"state": parts.state_cell("170px"),
                "crash": self._button("crash", lambda: act(name, "crash"), "danger"),
                "shutdown": self._button("shut down", lambda: act(name, "shutdown"), "warning"),
                "restart": self._button("restart", lambda: act(name, "restart")),
                "pause": self._button("pause", lambda: act(name, "pause")),
                "resume": self._button("resume", lambda: act(name, "resume"))}

    def _workflow_box(self) -> dict[str, w.Widget]:
        m, ch = self.model, self.model.choices
        return {
            "flow": self._on_value(w.ToggleButtons(options=["conductor", "legacy"]),
                                   lambda v: m.configure(flow=v)),
            "local_mode": self._on_value(w.Checkbox(description="local_mode"),
                                         lambda v: m.configure(local_mode=v)),
            "alternates": self._on_value(w.Checkbox(description="alternates"),
                                         lambda v: m.configure(alternates=v)),
            "resize_via_conductor": self._on_value(
                w.Checkbox(description="resize via conductor", indent=False),
                lambda v: m.configure(resize_via_conductor=v)),
            "object_pinning": self._on_value(
                w.Checkbox(description="object pinning", indent=False),
                lambda v: m.configure(object_pinning=v)),
            "max_attempts": self._on_value(
                w.IntSlider(min=1, max=6, description="max attempts",
                            style={"description_width": "initial"},
                            continuous_update=False), lambda v: m.configure(max_attempts=v)),
            "filters": self._on_value(CheckList(ch["filters"], "filters"),
                                      lambda v: m.configure(filters=list(v))),
            "weighers": self._on_value(CheckList(ch["weighers"], "weighers"),
                                       lambda v: m.configure(weighers=list(v))),
        }

    def _network_box(self) -> dict[str, w.Widget]:
        m, ch = self.model, self.model.choices
        box = {"link": w.Dropdown(options=ch["links"], description="link"),
               "method": w.Dropdown(options=ch["methods"], description="method"),
               "drop": w.FloatSlider(min=0, max=1, step=0.05, description="drop",
                                     readout_format=".0%", continuous_update=False),
               "delay": w.FloatSlider(min=0, max=5, step=0.1, description="delay (s)",
                                      continuous_update=False),
               "host": w.Dropdown(options=m.lab.config.compute_names(), description="compute")}
        box["apply"] = self._button("apply fault", lambda: m.network_fault(
            box["link"].value, box["method"].value, box["drop"].value, box["delay"].value),
            "warning")
        box["partition"] = self._button("partition", lambda: m.partition(box["host"].value),
                                        "danger")
        box["heal"] = self._button("heal network", m.heal, "success")
        return box

    def _boot_box(self) -> dict[str, w.Widget]:
        m = self.model
        box = {"count": w.BoundedIntText(value=1, min=1, max=100, description="how many",
                                         layout=w.Layout(width="170px")),
               "flavor": w.Dropdown(options=m.choices["flavors"], value="m1.small",
                                    description="flavor"),
               "progress": w.IntProgress(value=0, min=0, max=1, description="finished"),
               "table": w.HTML()}
        box["button"] = self._button("Boot", lambda: m.boot(box["count"].value,
                                                            box["flavor"].value), "primary")
        return box

    def _move_box(self) -> dict[str, w.Widget]:
        m = self.model
        box = {"server": w.Dropdown(options=[], description="server",
                                    layout=w.Layout(width="360px")),
               "action": w.Dropdown(options=m.choices["moves"], description="action"),
               "flavor": w.Dropdown(options=m.choices["flavors"], value="m1.medium",
                                    description="to flavor")}
        box["go"] = self._button("Go", lambda: m.move(box["server"].value,
                                                      box["action"].value,
                                                      box["flavor"].value), "primary")
        return box

    def _speed_box(self) -> dict[str, w.Widget]:
        m = self.model
        return {"preset": self._on_value(w.ToggleButtons(options=m.choices["presets"]),
                                         lambda v: m.set_speed(preset=v)),
                "speed": self._on_value(w.FloatLogSlider(value=1.0, base=10, min=-1, max=1,
                                                         step=0.05, description="speed ×",
                                                         readout_format=".2f",
                                                         continuous_update=False),
                                        lambda v: m.set_speed(speed=v))}

    # -- tabs ---------------------------------------------------------------------------------
    def _computes_tab(self) -> w.Widget:
        return w.VBox([parts.row([row["state"], row["reschedule"], row["fatal"], row["crash"],
                                  row["shutdown"], row["restart"]], "lab-compute-row")
                       for row in self.computes.values()])

    def _services_tab(self) -> w.Widget:
        return w.VBox([parts.row([row["state"], row["crash"], row["shutdown"], row["restart"],
                                  row["pause"], row["resume"]], "lab-service-row")
                       for row in self.services.values()])

    def _workflow_tab(self) -> w.Widget:
        b = self.workflow
        return w.VBox([parts.labelled("flow", b["flow"]),
                       w.HBox([b["local_mode"], b["alternates"]]),
                       parts.row([b["resize_via_conductor"], b["object_pinning"]]),
                       b["max_attempts"], w.HBox([b["filters"], b["weighers"]])])

    def _network_tab(self) -> w.Widget:
        b = self.network
        return w.VBox([parts.row([b["link"], b["method"]]),
                       parts.row([b["drop"], b["delay"], b["apply"]]),
                       parts.row([b["host"], b["partition"], b["heal"]])])

    def _boot_tab(self) -> w.Widget:
        b = self.boot
        return w.VBox([w.HBox([b["count"], b["flavor"], b["button"]]), b["progress"],
                       b["table"]])

    def _move_tab(self) -> w.Widget:
        b = self.move
        return w.VBox([parts.row([b["server"], b["action"], b["flavor"], b["go"]]),
                       w.HTML("migrate / resize end in VERIFY_RESIZE: confirm or revert. "
                              "evacuate needs the server's compute to be down.")])

    def _speed_tab(self) -> w.Widget:
        return w.VBox([parts.labelled("preset", self.speed["preset"]), self.speed["speed"]])

    def controls(self) -> list[w.Widget]:
        """Every widget that acts on the lab (buttons, sliders, toggles, dropdowns...)."""
        sections = [*self.computes.values(), *self.services.values(), self.workflow,
                    self.network, self.boot, self.speed, self.move]
        return [widget for section in sections for widget in section.values()
                if widget.has_trait("disabled")]

    # -- painting -----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Paint the model's current state into the widgets (no callbacks fire)."""
        try:
            snap = self.model.snapshot()
        except Exception as exc:
            self.status.value = ("<span style='color:#c62828'>lab unreachable: "
                                 f"{html.escape(str(exc))}</span>")
            return
        if not snap["running"]:
            self._paint_stopped(snap)
            return
        self._painting = True
        try:
            self._paint(snap)
        finally:
            self._painting = False

    def _compute_row_of(self, host: str) -> dict[str, w.Widget]:
        if host not in self.computes:    # lab.add_compute since the panel was made
            self.computes[host] = self._compute_row(host)
            self._computes_box.children = self._computes_tab().children
        return self.computes[host]

    def _paint(self, snap: dict[str, Any]) -> None:
        for c in snap["computes"]:
            row = self._compute_row_of(c["host"])
            row["state"].value = parts.state_html(
                c["host"], c["state"], f"{c['instances']} vms, {c['free_ram_mb']} MB / "
                                       f"{c['free_vcpus']} vCPU free")
            row["reschedule"].value, row["fatal"].value = c["reschedule"], c["fatal"]
        for s in snap["services"]:
            self.services[s["name"]]["state"].value = parts.state_html(s["name"], s["state"])
        wf = snap["workflow"]
        for key in ("flow", "local_mode", "alternates", "max_attempts",
                    "resize_via_conductor", "object_pinning"):
            self.workflow[key].value = wf[key]
        self.workflow["filters"].value = tuple(wf["filters"])
        self.workflow["weighers"].value = tuple(wf["weighers"])
        self.speed["preset"].value, self.speed["speed"].value = wf["preset"], wf["speed"]
        done, total = snap["progress"]
        self.boot["progress"].max, self.boot["progress"].value = max(total, 1), done
        self.boot["progress"].description = f"{done}/{total} done"
        self.boot["table"].value = parts.instances_html(snap["instances"])
        options = [(f"{r['name']} ({r['status']}, {r['host'] or 'no host'})", r["id"])
                   for r in snap["instances"]]
        if list(self.move["server"].options) != options:
            keep = self.move["server"].value
            self.move["server"].options = options
            ids = [v for _, v in options]
            if keep in ids or ids:          # keep the choice, else the newest server
                self.move["server"].value = keep if keep in ids else ids[-1]
        hosts = [c["host"] for c in snap["computes"]]
        if list(self.network["host"].options) != hosts:   # lab.add_compute meanwhile
            self.network["host"].options = hosts

    def _paint_stopped(self, snap: dict[str, Any]) -> None:
        """The last paint of a stopped lab: its state, why nothing acts, nothing enabled."""
        self.stop_auto_refresh()
        for c in snap["computes"]:
            self._compute_row_of(c["host"])["state"].value = parts.state_html(c["host"], c["state"])
        for s in snap["services"]:
            self.services[s["name"]]["state"].value = parts.state_html(s["name"], s["state"])
        for widget in self.controls():
            widget.disabled = True
        self.status.value = f"<span style='color:#616161'>{html.escape(snap['message'])}</span>"

    def _show_stopped(self) -> None:
        self._paint_stopped(self.model.stopped_snapshot())

    def start_auto_refresh(self, every: float = REFRESH_SECONDS) -> bool:
        """Repaint every ``every`` seconds on the running event loop (Jupyter's kernel has
        one) until the lab is stopped; returns False where there is no loop (a plain
        script) or the lab is already stopped."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self.stop_auto_refresh()   # one repaint loop per panel, however often asked
        if not self.model.lab_running():
            return False

        def tick() -> None:
            self.refresh()
            if self.model.lab_running():   # a crashed bus may come back; a stopped lab not
                self._timer = loop.call_later(every, tick)
            else:                          # stopped during that refresh: not "unreachable"
                self._show_stopped()
        self._timer = loop.call_later(every, tick)
        return True

    def stop_auto_refresh(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
