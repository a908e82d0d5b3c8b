"""How a browser reaches the dashboard: the rule for a laptop, a base URL, a hub, Binder
and an override, and the HTML a notebook cell shows."""
from __future__ import annotations

import html
import re

import pytest

from lab.dashboard import frame
from lab.dashboard.reach import OVERRIDE, Reach, decide

SERVER = {"pid": 4242, "url": "http://127.0.0.1:8888/user/alice/", "base_url": "/user/alice/",
          "token": "t"}
OTHER = {"pid": 777, "url": "http://127.0.0.1:9999/", "base_url": "/", "token": "u"}


def test_outside_jupyter_the_direct_url_stays():
    reach = decide({}, [SERVER], in_kernel=False)
    assert reach.how == "direct"
    assert reach.browser_url(5006, "s3cr3t") == "http://127.0.0.1:5006/dashboard?token=s3cr3t"
    assert reach.prefix(5006) == ""


def test_a_kernel_of_a_server_with_a_base_url_goes_through_that_server():
    reach = decide({"JPY_PARENT_PID": "4242"}, [OTHER, SERVER], in_kernel=True)
    assert reach.how == "jupyter"
    assert reach.prefix(5006) == "/user/alice/proxy/absolute/5006"
    # a path: the notebook's page resolves it against its own origin
    assert reach.browser_url(5006, "k") == "/user/alice/proxy/absolute/5006/dashboard?token=k"
    assert reach.server_url == "http://127.0.0.1:8888"


def test_the_kernels_own_server_is_found_by_its_parent_pid():
    reach = decide({}, [SERVER, OTHER], in_kernel=True, parent_pid=777)
    assert reach.prefix(1) == "/proxy/absolute/1"


def test_a_kernel_whose_server_cannot_be_found_stays_direct():
    reach = decide({"JPY_PARENT_PID": "1"}, [SERVER], in_kernel=True, parent_pid=2)
    assert reach.how == "direct"
    assert "no Jupyter server" in reach.why


@pytest.mark.parametrize("prefix", ["/user/bob/", "/user/bob", "user/bob/"])
def test_on_a_hub_or_binder_the_service_prefix_decides(prefix):
    # JupyterHub and Binder set JUPYTERHUB_SERVICE_PREFIX for the server and its kernels,
    # and also for terminals: `python -m lab up` there must not print 127.0.0.1.
    reach = decide({"JUPYTERHUB_SERVICE_PREFIX": prefix}, [], in_kernel=False)
    assert reach.how == "jupyter"
    assert reach.browser_url(6000) == "/user/bob/proxy/absolute/6000/dashboard"


def test_bokehs_external_url_makes_the_link_absolute_and_is_an_allowed_origin():
    env = {"JUPYTERHUB_SERVICE_PREFIX": "/user/bob/",
           "JUPYTER_BOKEH_EXTERNAL_URL": "https://hub.example.edu/"}
    reach = decide(env, [], in_kernel=True)
    assert reach.browser_url(6000, "x") == \
        "https://hub.example.edu/user/bob/proxy/absolute/6000/dashboard?token=x"
    assert "hub.example.edu" in reach.origins(6000)


def test_the_override_is_a_template_or_direct():
    env = {OVERRIDE: "https://lab.example.edu/jh/user/carol/proxy/absolute/{port}",
           "JUPYTERHUB_SERVICE_PREFIX": "/user/carol/"}
    reach = decide(env, [SERVER], in_kernel=True)
    assert reach.how == "override"
    assert reach.prefix(7) == "/jh/user/carol/proxy/absolute/7"
    assert reach.browser_url(7) == "https://lab.example.edu/jh/user/carol/proxy/absolute/7/dashboard"
    assert decide({OVERRIDE: "direct", "JUPYTERHUB_SERVICE_PREFIX": "/u/"}, [],
                  in_kernel=True).how == "direct"
    with pytest.raises(ValueError, match="port"):
        decide({OVERRIDE: "https://x.example/no-port"}, [], in_kernel=True)


def test_reach_survives_lab_json():
    reach = decide({"JUPYTERHUB_SERVICE_PREFIX": "/user/d/"}, [], in_kernel=True)
    assert Reach.from_dict(reach.to_dict()) == reach
    assert Reach.from_dict(None).how == "direct"


def test_the_frame_links_the_same_url_and_checks_itself_when_proxied():
    reach = decide({"JUPYTERHUB_SERVICE_PREFIX": "/user/e/"}, [], in_kernel=True)
    url = reach.browser_url(5, "a&b")
    out = frame.frame_html(url, reach, height=800)
    srcs = re.findall(r'(?:src|href)="([^"]+)"', out)
    assert srcs == [html.escape(url, quote=True)] * 2
    assert "onload=" in out and "lab-dashboard-trouble" in out and "800px" in out
    direct = Reach("direct")
    assert "onload=" not in frame.frame_html(direct.browser_url(5, "k"), direct)


def test_trouble_is_said_in_words_with_the_url_tried():
    out = frame.trouble_html("the Jupyter server answered 404", "/user/f/proxy/absolute/9/x")
    assert "not showing" in out and "404" in out and "/user/f/proxy/absolute/9/x" in out
    assert OVERRIDE in out
    assert "<script" not in frame.trouble_html("<script>x</script>", "")


def test_view_url_asks_for_a_layout_and_metrics_and_refuses_unknown_ones():
    url = "http://127.0.0.1:5006/dashboard?token=t"
    assert frame.view_url(url) == url
    assert frame.view_url(url, "projector") == url + "&layout=projector"
    asked = frame.view_url("http://h/d", "notebook", ["reschedules", "cast build_instances"])
    assert asked == "http://h/d?metrics=reschedules,cast%20build_instances"
    with pytest.raises(ValueError, match="layout must be one of notebook, projector"):
        frame.view_url(url, "poster")
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['speed'\]"):
        frame.view_url(url, metrics=["speed"])
    with pytest.raises(ValueError, match="unknown metric"):
        frame.view_url(url, metrics=["cast build_instances; drop"])


def test_a_frame_is_as_high_as_its_layout_needs():
    reach = Reach("direct")
    assert 'height:770px' in frame.frame_html("http://h/d", reach)
    assert 'height:680px' in frame.frame_html("http://h/d", reach,
                                              height=frame.FRAME_HEIGHTS["projector"])
