"""Take the screenshots of docs/ui.md: the example project's story as the Dagster UI shows it.

    .venv/bin/python docs/take_screenshots.py [--home DIR]

Runs the CLI story (v1, v1 again, v2 reset, v3 refused under raise) into a fresh DAGSTER_HOME,
starts dagster-webserver and dagster-daemon on loopback, and drives a headless Chromium:

- partitions.png: the asset's partitions, the refused v3 selected (failed by the submit job);
- materialization-metadata.png: v2's materialization with dotflow/current_fingerprint and dotflow/history;
- then launches a backfill over every partition, as the UI's "Materialize all" would, and takes
- backfill-replay.png: v1's materialization by the backfill: its own kept result, nothing executed;
- backfill.png: the backfill's own page;
- incremental-steps.png (in a second DAGSTER_HOME: v2, then v2 into another warehouse table under
  incremental): the dotflow/steps table, with why each step ran or was reused.

Needs Debian's chromium (/usr/bin/chromium) and playwright from PyPI in the venv; it never
downloads a browser (no `playwright install`).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Browser, Page, Playwright, sync_playwright  # noqa: E402

from tests.story import PAYLOADS, dagster_job_execute, dagster_process, graphql, run_story, webserver  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# The metadata tables are wider than 1400 CSS pixels: lay the page out at 1750 px and render it
# at 0.8, so every PNG is 1400 px wide and nothing is cut off on the right.
WIDTH, SCALE = 1750, 0.8
MAX_BYTES = 400_000

PARTITION_KEYS = 'query { assetNodes(assetKeys: [{path: ["orders_demo"]}]) { partitionKeys } }'
LAUNCH_BACKFILL = """
mutation Backfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}
"""
BACKFILL_STATUS = "query Status($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }"
FINISHED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def new_page(playwright: Playwright) -> tuple[Browser, Page]:
    """Debian's headless Chromium, laid out at WIDTH and rendered at SCALE, with one page."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    context = browser.new_context(viewport={"width": WIDTH, "height": 1250}, device_scale_factor=SCALE)
    # Dagster's "join the community" dialog shows once per browser on localhost.
    context.add_init_script("window.localStorage.setItem('communityNux', JSON.stringify('1'))")
    return browser, context.new_page()


def open_page(page: Page, url: str, *texts: str) -> None:
    """Load a UI page and wait until it has rendered ``texts`` (the UI fills itself in asynchronously)."""
    page.goto(url, wait_until="networkidle")
    hide = page.get_by_text("Hide navigation", exact=True)
    if hide.count() and hide.first.is_visible():
        hide.first.click()
    for text in texts:
        page.get_by_text(text, exact=False).first.wait_for(timeout=60_000)
    page.wait_for_load_state("networkidle")
    page.mouse.move(5, 5)  # no hover tooltips
    page.wait_for_timeout(1000)


def shoot(page: Page, name: str, height: int) -> Path:
    page.set_viewport_size({"width": WIDTH, "height": height})
    page.wait_for_timeout(800)
    path = OUT / name
    page.screenshot(path=str(path))
    size = path.stat().st_size
    print(f"{path.relative_to(ROOT)}: {size // 1024} KB")
    assert size < MAX_BYTES, f"{path} is {size} bytes"
    return path


def launch_backfill_of_every_partition(url: str, timeout: float = 240) -> str:
    launched = graphql(url, LAUNCH_BACKFILL, params={
        "assetSelection": [{"path": ["orders_demo"]}], "allPartitions": True, "fromFailure": False,
    })["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]
    deadline = time.monotonic() + timeout
    while (status := graphql(url, BACKFILL_STATUS, id=backfill_id)["partitionBackfillOrError"]["status"]) not in FINISHED:
        assert time.monotonic() < deadline, f"backfill {backfill_id} still {status} after {timeout} s"
        time.sleep(2)
    print(f"backfill {backfill_id}: {status}")
    return backfill_id


def take(home: Path) -> None:
    runs = run_story(home)
    assert [run.returncode == 0 for run in runs] == [True, True, True, False], runs[-1].output[-3000:]
    OUT.mkdir(parents=True, exist_ok=True)
    with webserver(home) as url, dagster_process(home, "dagster-daemon", "run", "-w", "workspace.yaml"), \
            sync_playwright() as playwright:
        v1, v2, v3 = graphql(url, PARTITION_KEYS)["assetNodes"][0]["partitionKeys"]
        browser, page = new_page(playwright)

        open_page(page, f"{url}/assets/orders_demo?view=partitions", "Failed (1)", v3[:12])
        page.get_by_text(v3[:12], exact=False).first.click()
        page.get_by_text("failed, and did not materialize").first.wait_for()
        page.mouse.move(5, 5)
        shoot(page, "partitions.png", 700)

        open_page(page, f"{url}/assets/orders_demo?view=events&partition={v2}",
                  "materialized in run", "dotflow/current_fingerprint", "dotflow/history")
        shoot(page, "materialization-metadata.png", 1250)

        backfill_id = launch_backfill_of_every_partition(url)
        open_page(page, f"{url}/assets/orders_demo?view=events&partition={v1}",
                  "materialized in run", f"backfill {backfill_id}", "dotflow/skipped")
        shoot(page, "backfill-replay.png", 1000)

        open_page(page, f"{url}/runs/b/{backfill_id}", "Partitions targeted", "orders_demo")
        shoot(page, "backfill.png", 420)
        browser.close()


def take_incremental(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    runs = [dagster_job_execute(home, PAYLOADS / name) for name in ("orders_v2.yaml", "orders_v2_new_table.yaml")]
    assert [run.returncode for run in runs] == [0, 0], runs[-1].output[-3000:]
    OUT.mkdir(parents=True, exist_ok=True)
    with webserver(home) as url, sync_playwright() as playwright:
        _, incremental = graphql(url, PARTITION_KEYS)["assetNodes"][0]["partitionKeys"]
        browser, page = new_page(playwright)
        open_page(page, f"{url}/assets/orders_demo?view=events&partition={incremental}",
                  "materialized in run", "dotflow/steps", "reads unchanged")
        shoot(page, "incremental-steps.png", 1250)
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="keep the DAGSTER_HOME here (must not exist yet)")
    parser.add_argument("--only-incremental", action="store_true", help="take incremental-steps.png alone")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dotflow-ui-") as temporary:
        if not arguments.only_incremental:
            take(arguments.home.resolve() if arguments.home else Path(temporary) / "dagster_home")
        take_incremental(Path(temporary) / "incremental_home")
    return 0


if __name__ == "__main__":
    sys.exit(main())
