"""A class's read-only dashboard link (the one in every student's ticket) in real headless
Chromium: the page loads from the class's dashboard port with the students' token, draws
the students' computes as they join and build, and loads BokehJS from the lab, never a
CDN; without the token it is a 403 page in words."""
from __future__ import annotations

import pytest

from lab.classroom import free_class_port
from lab.join import Student
from orchestrator.messaging import curve

pytestmark = pytest.mark.timeout(150)


def test_curve_the_students_read_only_dashboard_shows_their_computes(
        make_lab, tmp_path, bokeh_page, model_data, wait_for, screenshot, browser):
    keys = tmp_path / "keys"
    curve.write_keys(keys, ["ada", "ben"], "127.0.0.1", free_class_port())
    lab = make_lab(computes=1, listen="127.0.0.1", class_keys=str(keys), dashboard=True)
    students = []
    try:
        for name in ("ada", "ben"):
            students.append(Student(keys / "tickets" / f"{name}.ticket", 1,
                                    run_dir=tmp_path / name))
            students[-1].start()
        url = lab.student_dashboard_url("ada")
        assert url == curve.load_ticket(keys / "tickets" / "ada.ticket")["dashboard"]
        page = bokeh_page(url)
        scripts = browser.execute_script(
            "return Array.from(document.scripts).map(s => s.src).filter(Boolean)")
        assert scripts and all(s.startswith(url.split("/dashboard")[0]) for s in scripts)
        lab.set_failure("compute1", reschedule=1.0)
        lab.wait([lab.boot(f"c{i}") for i in range(4)], timeout=60)

        def drawn() -> bool:
            nodes = model_data("nodes") or {}
            names = set(nodes.get("name", [])) | set(nodes.get("label", []))
            return {"compute.ada_1", "compute.ben_1"} <= names or \
                {"ada_1", "ben_1"} <= names
        wait_for(drawn, 30, "both students' computes on the class's dashboard")
        screenshot("class")
        page.delete_all_cookies()      # the token's cookie: a browser without the link
        page.get(url.split("?")[0])
        assert "needs its lab's token" in page.page_source
        # ada revoked: her link no longer opens the page; ben's still does
        curve.revoke(keys, "ada")
        page.get(url)
        assert "needs its lab's token" in page.page_source
        page.delete_all_cookies()
        bokeh_page(lab.student_dashboard_url("ben"))
    finally:
        for student in students:
            student.stop()
