"""bench/saturation.py's quick mode, end to end: both process counts measured, packets
forwarded in every step, the rooms spread over both workers, the sinks still connected."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_saturation_run_measures_both_process_counts(tmp_path: Path) -> None:
    out = tmp_path / "saturation.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.saturation", "--quick", "--max-seconds", "50",
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["complete"] is True
    runs = {run["processes"]: run for run in document["runs"]}
    assert sorted(runs) == [1, 2]
    for run in runs.values():
        assert run["steps"], f"no step measured with {run['processes']} process(es)"
        for step in run["steps"]:
            assert step["forwarded_pps"] > 0, step
            assert step["subscribers"] == 6  # 2 rooms x 3 sinks
            assert step["connected"] == step["subscribers"], step
            # the sinks do not read: the kernel drops what the server sends them
            assert step["sink_drops_pps"] > 0, step
    for step in runs[2]["steps"]:
        # the two rooms went to different workers, and both forwarded
        assert step["consumers_by_worker"] == [3, 3], step
        assert all(pps > 0 for pps in step["forwarded_pps_by_worker"]), step
    assert set(document["summary"]["max_forwarded_pps"]) == {"1", "2"}
    assert "max forwarded, 2 process(es)" in result.stdout
