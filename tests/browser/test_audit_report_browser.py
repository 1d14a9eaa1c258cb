"""The audit report opens offline in headless Chromium and draws its charts."""

from __future__ import annotations

import explorer as ex
from explorer import demo


def test_audit_report_renders_offline(page, outside_requests, artifacts, tmp_path):
    report = ex.audit(demo.load("base"), demo.load("lora"), None, tmp_path / "audit")
    local = []
    page.on("request", lambda r: local.append(r.url))
    page.goto(report.as_uri())
    charts = page.locator("figure svg")
    assert charts.count() >= 2  # spectra and compare (no probe: no representation sections)
    box = charts.first.bounding_box()
    assert box["width"] > 200 and box["height"] > 100
    marks = page.locator("figure svg path, figure svg rect").count()
    assert marks > 50, "the charts drew almost nothing"
    page.screenshot(path=artifacts / "audit_report.png", full_page=True)
    assert outside_requests == []
    assert all(url.startswith("file:") for url in local)
