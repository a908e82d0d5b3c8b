"""Hostile server names on a real lab's dashboard, in real headless Chromium: names made of
markup, an entity, quotes and 255 characters of RTL text and emoji are booted through the
API (a newline and bidi controls too, if the API takes them: the names it refuses with a
400 are printed), two of them fail so their fault labels show, each lane is hovered, the
instance filter is set by name, and the page is reloaded. Every name shows as text (the sources hold it verbatim;
the page's text, shadow roots included, holds the literal tag); no script ran (alert,
confirm and prompt are trapped before the page loads) and no element the names spell
(``<img src=x>``, ``<b>bold</b>``, an ``on*`` handler) was ever put into the page, not even
for a moment (a MutationObserver on the document and on every shadow root)."""
from __future__ import annotations

import time

import pytest

from lab.api_client import ApiError
from lab.dashboard.text import isolated

pytestmark = pytest.mark.timeout(180)

SCRIPT, IMG = "<script>alert(1)</script>", '"><img src=x onerror=alert(1)>'
# 255 printable characters (Nova's rule): Hebrew, Arabic, emoji and markup
LONG = ("שלום عالم 😀 <svg onload=alert(4)> " * 20)[:254] + "✓"
HOSTILE = [SCRIPT, IMG, "<b>bold</b>", "&amp;", "it's \"quoted\" `${alert(2)}` '); alert(3);//",
           LONG,
           # not printable (a newline; bidi controls are format characters): an API with
           # Nova's rule refuses them with a 400, an older one takes them
           "two\nlines <i>x</i>", "\u202e\u200fRTL marks <u>x</u>"]
REQUIRED = HOSTILE[:6]              # the API must take these
FSI = "\u2068"                      # a label isolates a name holding RTL text
FAILING = (IMG, SCRIPT)             # booted while every compute fails: ERROR, fault notes

# Before any page script: the dialogs trapped, and a watch on the document and on every
# shadow root (Bokeh renders into them) for an element a name would make if parsed.
TRAP = r"""
window.__alerts = [];
for (const f of ["alert", "confirm", "prompt"]) {
  window[f] = (m) => { window.__alerts.push(f + ":" + String(m)); };
}
window.__injected = [];
const suspicious = (el) => {
  if (el.tagName === "IMG" && el.getAttribute("src") === "x") { return "img src=x"; }
  if (el.tagName === "SCRIPT" && el.textContent.includes("alert(")) { return "script"; }
  if (["B", "I"].includes(el.tagName) && ["bold", "x"].includes(el.textContent)) {
    return "<" + el.tagName.toLowerCase() + ">" + el.textContent;
  }
  for (const a of el.attributes || []) {
    if (a.name.startsWith("on") && a.value.includes("alert(")) { return a.name + " handler"; }
  }
  return null;
};
const inspect = (node) => {
  if (node.nodeType !== 1) { return; }
  for (const el of [node, ...node.querySelectorAll("*")]) {
    const what = suspicious(el);
    if (what) { window.__injected.push(what); }
  }
};
const watch = (root) => new MutationObserver((records) => {
  for (const r of records) {
    for (const n of r.addedNodes) { inspect(n); }
    if (r.type === "attributes") { inspect(r.target); }
  }
}).observe(root, {childList: true, subtree: true, attributes: true});
watch(document);
const attach = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) {
  const root = attach.call(this, init);
  watch(root);
  return root;
};
"""

# The page now: every text node (not scripts' or styles'), every element that a name
# would make, in the document and every shadow root.
PAGE_NOW = r"""
const texts = [], found = [];
const walk = (root) => {
  for (const el of root.querySelectorAll("*")) {
    if (el.tagName === "IMG" && el.getAttribute("src") === "x") { found.push("img src=x"); }
    if (el.tagName === "SCRIPT" && el.textContent.includes("alert(")) { found.push("script"); }
    if (el.tagName === "B" && el.textContent === "bold") { found.push("<b>bold"); }
    if (!["SCRIPT", "STYLE"].includes(el.tagName)) {
      for (const n of el.childNodes) { if (n.nodeType === 3) { texts.push(n.data); } }
    }
    if (el.shadowRoot) { walk(el.shadowRoot); }
  }
};
walk(document);
return {texts: texts, found: found, alerts: window.__alerts, injected: window.__injected};
"""

# Screen position (viewport pixels) of the middle of row i's bar in the instance lanes.
LANE_POINT = r"""
const doc = Bokeh.documents[0];
const plot = doc.get_model_by_name("instance_lanes");
const view = Bokeh.index.get_one(plot);
view.el.scrollIntoView({block: "center"});
const d = doc.get_model_by_name("instances").data, i = arguments[0];
const sx = view.frame.x_scale.compute((d.start[i] + d.end[i]) / 2);
const sy = view.frame.y_scale.compute(d.y[i]);
const box = view.canvas_view.events_el.getBoundingClientRect();
return [box.left + sx, box.top + sy];
"""

# The text of every tooltip shown now (Bokeh's Tooltip views, in shadow roots).
TOOLTIPS = r"""
const out = [];
const walk = (root) => {
  for (const el of root.querySelectorAll("*")) {
    if (el.classList.contains("bk-Tooltip") && el.getClientRects().length) {
      out.push((el.shadowRoot || el).textContent);
    }
    if (el.shadowRoot) { walk(el.shadowRoot); }
  }
};
walk(document);
return out;
"""

PICK = r"""
const find = (root) => {
  for (const el of root.querySelectorAll("*")) {
    if (el.tagName === "SELECT" && el.name === "instance_filter") { return el; }
    if (el.shadowRoot) { const hit = find(el.shadowRoot); if (hit) { return hit; } }
  }
  return null;
};
const select = find(document);
if (!select) { return null; }
const labels = [...select.options].map((o) => o.text);
if (arguments[0] !== null) {
  const option = [...select.options].find((o) => o.text.startsWith(arguments[0]));
  if (!option) { return {labels: labels, picked: false}; }
  select.value = option.value;
  select.dispatchEvent(new Event("change"));
}
return {labels: labels, picked: true};
"""


def boot_all(lab) -> tuple[dict[str, str], list[str]]:
    """Boot every hostile name (the failing ones while every compute fails); returns the
    ids of those the API accepted and the names it refused (400)."""
    ids, refused = {}, []
    hosts = lab.config.compute_names()

    def boot(names, status):
        for name in names:
            try:
                ids[name] = lab.boot(name)
            except ApiError as err:
                assert err.status == 400, err
                refused.append(name)
        for name in names:
            if name in ids:
                assert lab.wait(ids[name], timeout=60)["status"] == status, name

    for host in hosts:
        lab.set_failure(host, fatal=1.0)
    boot(FAILING, "ERROR")
    for host in hosts:
        lab.set_failure(host, fatal=0.0)
    boot([n for n in HOSTILE if n not in FAILING], "ACTIVE")
    return ids, refused


def option_start(name: str) -> str:
    """How the instance filter's option for ``name`` begins: an option's text has its
    whitespace collapsed, and a name holding RTL text is isolated."""
    text = " ".join(name.split())[:20]
    return FSI + text if isolated(name) != name else text


def hover_lane(browser, model_data, name: str) -> list[str]:
    """Move the mouse onto the widest bar of ``name``'s lane; the tooltips holding the
    name. Nothing may have run or been injected by then."""
    data = model_data("instances", browser)
    i = max((j for j, n in enumerate(data["name"]) if n == name),
            key=lambda j: data["end"][j] - data["start"][j])
    x, y = browser.execute_script(LANE_POINT, i)
    for dx in (0, 1):               # a move the hover tool sees, even to the same spot
        browser.execute_cdp_cmd("Input.dispatchMouseEvent",
                                {"type": "mouseMoved", "x": x + dx, "y": y})
    time.sleep(0.1)
    ran = browser.execute_script("return [window.__alerts, window.__injected]")
    assert ran == [[], []], f"hovering {name!r}: {ran}"
    return [t for t in browser.execute_script(TOOLTIPS) if name in t]


def check_page(browser, expect_text: list[str]) -> None:
    """Nothing ran, nothing was injected, nothing is there; each of ``expect_text`` is
    text on the page (shadow roots included)."""
    now = browser.execute_script(PAGE_NOW)
    assert now["alerts"] == [], now["alerts"]
    assert now["injected"] == [], now["injected"]
    assert now["found"] == [], now["found"]
    text = "\n".join(now["texts"])
    for name in expect_text:
        assert name in text, f"{name!r} is not text on the page"


def test_hostile_names_show_as_text_and_run_nothing(make_lab, make_browser, bokeh_page,
                                                   model_data, wait_for, screenshot):
    lab = make_lab(computes=3, dashboard=True)
    browser = make_browser()
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": TRAP})
    bokeh_page(lab.dashboard_url, driver=browser)
    assert browser.execute_script("return window.__alerts") == []     # the trap is in

    ids, refused = boot_all(lab)
    print(f"names the API refused: {refused!r}")
    assert set(REQUIRED) <= set(ids), refused
    accepted = [n for n in HOSTILE if n in ids]

    # the sources hold every name verbatim (Bokeh draws them on the canvas as text)
    lanes = wait_for(lambda: (d := model_data("instances", browser)) and
                     set(accepted) <= set(d["name"]) and d, timeout=30,
                     what="every name in the instance lanes")
    assert {ids[n] for n in accepted} <= set(lanes["instance"])
    # a compute's note is its newest fault: the last name booted is named verbatim
    notes = wait_for(lambda: (d := model_data("annotations", browser)) and
                     f"{FAILING[-1]}: BuildAbortException" in d["text"] and d,
                     timeout=30, what="the fault note of the last failed name")
    faults = {t for t in notes["text"] if "BuildAbortException" in t}
    assert faults <= {f"{n}: BuildAbortException" for n in FAILING}, faults
    # ...and the dropdown offers them as text
    pick = wait_for(lambda: (p := browser.execute_script(PICK, None)) and
                    all(any(label.startswith(option_start(n)) for label in p["labels"])
                        for n in accepted) and p,
                    timeout=30, what="every name in the instance filter")
    assert any(label.startswith(f"{SCRIPT} (") for label in pick["labels"])
    assert any(label.startswith("&amp; (") for label in pick["labels"])   # not "&"
    screenshot("names", driver=browser)

    # hover each instance's lane: its tooltip shows the name (and fault) as text
    for name in accepted:
        shown = wait_for(lambda: hover_lane(browser, model_data, name), timeout=20,
                         what=f"the tooltip of {name!r}")
        if name in FAILING:
            assert any("BuildAbortException" in t for t in shown), shown
        if name == "&amp;":
            assert not any("&amp;amp;" in t for t in shown), shown
    screenshot("hovered", driver=browser)
    browser.execute_cdp_cmd("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": 1, "y": 1})
    check_page(browser, [SCRIPT, IMG, "<b>bold</b>", "&amp;"])

    # pick the <script> name in the instance filter: the view narrows to it
    assert browser.execute_script(PICK, f"{SCRIPT} (")["picked"]
    wait_for(lambda: browser.execute_script(
        "return Bokeh.documents[0].get_model_by_name('instance_filter').value") ==
        ids[SCRIPT], timeout=20, what="the filter set to the <script> server")
    wait_for(lambda: (t := model_data("timeline", browser)) and t["instance"] and
             set(t["instance"]) == {ids[SCRIPT]}, timeout=30,
             what="only the <script> server's messages")
    check_page(browser, [SCRIPT, IMG, "<b>bold</b>", "&amp;"])

    # a fresh page, the names there from its first document
    browser.refresh()
    wait_for(lambda: browser.execute_script(
        "return !!(window.Bokeh && Bokeh.documents.length && Bokeh.documents[0].is_idle)"),
        timeout=30, what="the reloaded dashboard")
    wait_for(lambda: (d := model_data("instances", browser)) and
             set(accepted) <= set(d["name"]), timeout=30, what="the names after a reload")
    wait_for(lambda: (p := browser.execute_script(PICK, None)) and
             any(label.startswith(f"{SCRIPT} (") for label in p["labels"]), timeout=30,
             what="the names in the reloaded filter")
    check_page(browser, [SCRIPT, IMG, "<b>bold</b>", "&amp;"])
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors
