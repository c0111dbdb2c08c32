"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.stack import RedisServer, Stack, running_stack, unique

TENANT, OPERATOR = "tenant-key-0123456789", "operator-key-0123456789"
CHROMIUM = os.environ.get("INFERQ_CHROMIUM") or shutil.which("chromium") or ""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM:
        pytest.skip(
            "browser tests did not run: no Chromium on PATH "
            "(apt-get install chromium, or set INFERQ_CHROMIUM)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


def _use_key(page: Page, key: str, role: str) -> None:
    page.fill("#key", key)
    page.click("#key-form button")
    expect(page.locator("#role")).to_have_text(role)


def _submit(live: Stack, priority: str = "normal") -> str:
    with live.client() as client:
        job = {"model": "counting", "input": {"key": unique()}, "priority": priority}
        response = client.post("/jobs", json=job, headers={"Authorization": f"Bearer {TENANT}"})
        assert response.status_code == 202
        job_id: str = response.json()["id"]
        return job_id


def test_the_dashboard_shows_live_numbers_jobs_and_lets_an_operator_cancel(
    browser: Browser, redis_server: RedisServer, workdir: Path
) -> None:
    env = {"INFERQ_API_KEYS": TENANT, "INFERQ_OPERATOR_KEYS": OPERATOR}
    with running_stack(redis_server, workdir, consumer_workers=0, **env) as live:
        page = browser.new_page()
        problems: list[str] = []
        # Refusals the page expects (401 before a key, 403 probing for operator) are logged
        # by Chromium as failed loads; anything else, such as a blocked asset, is a problem.
        page.on(
            "console",
            lambda m: (
                problems.append(m.text)
                if m.type == "error" and "Failed to load resource" not in m.text
                else None
            ),
        )
        page.on("pageerror", lambda exc: problems.append(str(exc)))

        page.goto(f"{live.url}/dashboard")
        expect(page.locator("#error")).to_contain_text("401")  # keys are on: no key, no data
        _use_key(page, TENANT, "read-only")
        expect(page.locator("#total-queued")).to_have_text("0")
        expect(page.locator("#controls")).to_be_hidden()

        ids = [_submit(live) for _ in range(3)]
        expect(page.locator("#total-queued")).to_have_text("3")  # it refreshes by itself
        expect(page.locator("#queues tbody")).to_contain_text("counting@1")

        page.click("#nav-jobs")
        expect(page.locator("#jobs tbody tr")).to_have_count(3)
        page.locator(".job-link", has_text=ids[0]).click()
        expect(page.locator("#detail-status")).to_have_text("queued")
        expect(page.locator("#detail-model")).to_have_text("counting@1")

        page.click("#nav-jobs")
        page.fill("#search-id", ids[1])
        page.click("#job-search button")
        expect(page.locator("#job-id")).to_have_text(ids[1])

        _use_key(page, OPERATOR, "operator")
        expect(page.locator("#cancel-job")).to_be_visible()
        page.click("#cancel-job")
        expect(page.locator("#confirm")).to_be_visible()
        page.click("#confirm-no")  # backing out changes nothing
        expect(page.locator("#detail-status")).to_have_text("queued")
        page.click("#cancel-job")
        page.click("#confirm-yes")
        expect(page.locator("#detail-status")).to_have_text("canceled")

        page.click("#nav-overview")
        expect(page.locator("#controls")).to_be_visible()
        expect(page.locator("#total-queued")).to_have_text("2")
        page.select_option("#purge-model", "counting")
        page.click("#purge")
        expect(page.locator("#confirm-text")).to_contain_text("cancel 2 queued jobs")
        page.click("#confirm-yes")
        expect(page.locator("#control-result")).to_have_text("done: cancel 2 queued jobs")
        expect(page.locator("#total-queued")).to_have_text("0")
        if os.environ.get("INFERQ_DASHBOARD_SCREENSHOT"):
            page.screenshot(path=os.environ["INFERQ_DASHBOARD_SCREENSHOT"], full_page=True)
        page.close()

        with live.client() as client:
            operator = {"Authorization": f"Bearer {OPERATOR}"}
            statuses = [client.get(f"/jobs/{i}", headers=operator).json()["status"] for i in ids]
    assert statuses == ["canceled", "canceled", "canceled"]
    assert problems == []  # no script errors, nothing the content policy blocked
    log = "\n".join(p.read_text() for p in (workdir / "logs").glob("api-*.log"))
    assert "purged 2 queued jobs" in log


def test_the_dashboard_ships_its_assets_and_a_strict_content_policy(
    redis_server: RedisServer, workdir: Path
) -> None:
    with running_stack(redis_server, workdir, consumer_workers=0) as live, live.client() as client:
        page = client.get("/dashboard")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert "http" not in page.text.replace(live.url, "")  # no CDN, no remote asset
        for asset in ("dashboard.js", "dashboard.css"):
            assert client.get(f"/dashboard/assets/{asset}").status_code == 200
        assert "/dashboard" not in client.get("/openapi.json").json()["paths"]
