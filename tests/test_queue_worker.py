"""The example queue consumer, without Dagster: redeliveries do nothing, a bad message stops nothing."""

import subprocess
import sys

from tests.conftest import ROOT, subprocess_env

MESSAGES = sorted((ROOT / "example_project" / "payloads" / "messages").glob("*.json"))


def test_queue_worker_handles_each_message_on_its_own(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "example_project.queue_worker", *map(str, MESSAGES)],
        cwd=ROOT,
        env=subprocess_env(DOTFLOW_STORE=str(tmp_path / "store"), ORDERS_DEMO_WAREHOUSE=str(tmp_path / "w.sqlite")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = dict(line.split(": ", 1) for line in completed.stdout.splitlines())
    by_name = {path.name: lines[str(path)] for path in MESSAGES}
    assert completed.returncode == 1  # one message failed
    assert by_name["01_november.json"].startswith("new ") and "executed=['extract', 'transform', 'load']" in by_name["01_november.json"]
    assert by_name["02_november_redelivered.json"].startswith("unchanged ") and "executed=[]" in by_name["02_november_redelivered.json"]
    assert "failed at extract" in by_name["03_bad_file.json"]
    assert "payload key 'orders_file': '../../etc/passwd' is not a file" in by_name["03_bad_file.json"]
    assert by_name["04_december.json"].endswith(" ok") and "rows=8" in by_name["04_december.json"]
    assert "demo-token" not in completed.stdout + completed.stderr
