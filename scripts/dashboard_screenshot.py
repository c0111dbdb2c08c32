"""Screenshot of the dashboard over a short mixed load: `python -m scripts.dashboard_screenshot`.

Starts its own redis-server, a consumer (`-k process -w 2`) and the API with the shipped
settings, drives queued and direct predictions from a few threads for `--seconds`
(pausing intake briefly, so refusals show), then has headless Chromium save the page.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import threading
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from scripts import stack

OPERATOR = "screenshot-operator-key"


def _drive(base: str, until: float, seed: int) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=base, timeout=30) as client:
        while time.monotonic() < until:
            pixels = [rng.randint(0, 16) for _ in range(64)]
            if rng.random() < 0.6:
                body = {"model": "digits", "input": {"pixels": pixels}, "priority": "normal"}
                client.post("/jobs?wait=true", json=body)
            else:
                client.post("/predict", json={"model": "iris", "input": _iris(rng)})
            time.sleep(rng.uniform(0, 0.05))


def _iris(rng: random.Random) -> dict[str, float]:
    names = ("sepal_length", "sepal_width", "petal_length", "petal_width")
    return {name: round(rng.uniform(0.5, 7), 1) for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--out", type=Path, default=stack.ROOT / "docs/results/dashboard.png")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="inferq-shot-"))
    redis_port, api_port = stack.free_port(), stack.free_port()
    env = {
        "INFERQ_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "INFERQ_ENVIRONMENT": "development",
        "INFERQ_OPERATOR_KEYS": OPERATOR,
        "INFERQ_LOG_DIR": str(work / "logs"),
        "INFERQ_METRICS_DIR": str(work / "metrics"),
    }
    procs = [stack.start_redis(redis_port, work / "redis")]
    try:
        procs.append(stack.start_consumer(env, 2, work / "consumer.out"))
        procs.append(stack.start_api(env, api_port, 1, work / "api.out"))
        base = f"http://127.0.0.1:{api_port}"
        stack.wait_until(lambda: stack.http_ok(f"{base}/readyz"), 60, "a consumer")
        until = time.monotonic() + args.seconds
        threads = [
            threading.Thread(target=_drive, args=(base, until, n), daemon=True) for n in range(6)
        ]
        for thread in threads:
            thread.start()
        operator = {"Authorization": f"Bearer {OPERATOR}"}
        time.sleep(args.seconds / 2)
        httpx.post(f"{base}/admin/pause", headers=operator)
        time.sleep(3)
        httpx.post(f"{base}/admin/resume", headers=operator)
        for thread in threads:
            thread.join()
        time.sleep(2.5)  # one more flush of every process's tally
        with sync_playwright() as playwright:
            chromium = shutil.which("chromium") or "/usr/bin/chromium"
            browser = playwright.chromium.launch(executable_path=chromium, headless=True)
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.goto(f"{base}/dashboard")
            page.fill("#key", OPERATOR)
            page.click("#key-form button")
            page.wait_for_function("document.getElementById('role').textContent === 'operator'")
            page.select_option("#history-minutes", "5")
            page.wait_for_timeout(2500)
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
        print(f"wrote {args.out}")
    finally:
        for proc in reversed(procs):
            stack.stop(proc)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
