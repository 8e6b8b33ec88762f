"""What the browser tests ask of the page and of the server, in one place for every e2e module."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from browser import Page


def q(page: Page, js: str) -> Any:
    """The value of a JavaScript expression in the page."""
    return page.evaluate(js)


def in_view(page: Page, selector: str) -> bool:
    """Rendered (not hidden, not display:none) and wholly inside the 1280x900 viewport right now."""
    return page.evaluate(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
        if (!e || !e.checkVisibility({{checkVisibilityCSS: true}})) return false;
        const r = e.getBoundingClientRect();
        return r.width > 0 && r.height > 0 && r.top >= 0 && r.left >= 0
               && r.bottom <= window.innerHeight && r.right <= window.innerWidth; }})()""")


def text(page: Page, selector: str) -> str:
    """What the user reads there (innerText: rendered text only)."""
    return page.evaluate(f"document.querySelector({json.dumps(selector)}).innerText")


def wait_job(url: str, job_id: str, timeout: float = 180.0) -> dict:
    """The job once it ended (done or failed), polled over HTTP."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/jobs/{job_id}", timeout=10).json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not finished after {timeout:.0f} s: {job}")


def wait_done(served: Any, job_id: str, timeout: float = 120) -> dict:
    """The job once done (a Promise handed to the page's wait_for is truthy at once, so never wait there)."""
    job = wait_job(served.url, job_id, timeout)
    assert job["status"] == "done", job
    return job
