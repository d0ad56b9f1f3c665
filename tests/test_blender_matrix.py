"""docs/blender_matrix.json (made by `make test-blender-matrix`) says what it should: the add-on
tests ran on Blender 4.2 LTS, 4.5 LTS and 5.3 with the Python each embeds, all of them ran, and
every failure or unclean exit is explained."""
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "docs" / "blender_matrix.json"
EXPECT = {"4.2": "3.11", "4.5": "3.11", "5.3": "3.13"}


def test_matrix_report_is_honest():
    results = json.loads(REPORT.read_text())["results"]
    assert set(EXPECT) <= set(results)
    # at least one collected test per test function in tests/blender (parametrized ones give more)
    files = (ROOT / "tests" / "blender").glob("test_*.py")
    functions = sum(len(re.findall(r"^def test_", f.read_text(), re.M)) for f in files)
    for name, py in EXPECT.items():
        r = results[name]
        assert r["blender"].startswith(name + "."), r["blender"]
        assert r["python"].startswith(py + "."), r["python"]
        assert r["collected"] >= functions and r["passed"] + r["failed"] + r["skipped"] == r["collected"]
        assert r["passed"] > 0 and len(r["failures"]) == r["failed"]
        if r["failed"] or r["exit"] != "ok":
            assert r["notes"], f"Blender {name}: {r['failed']} failed, exit {r['exit']}, and no note says why"
        if r["skipped"]:
            assert r["notes"], f"Blender {name}: {r['skipped']} skipped and no note says why"
