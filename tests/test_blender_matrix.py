"""docs/blender_matrix.json (made by `make test-blender-matrix`) says what it should: the add-on
tests ran on Blender 4.2 LTS, 4.5 LTS and 5.3 with the Python each embeds, all of them ran, every
failure, skip or unclean exit is explained, and the offline zip checks say what they found."""
import copy
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "docs" / "blender_matrix.json"
EXPECT = {"4.2": "3.11", "4.5": "3.11", "5.3": "3.13"}


def report_problems(report: dict) -> list[str]:
    out = []
    results = report.get("results", {})
    out += [f"Blender {b} is not in the report" for b in EXPECT if b not in results]
    # at least one collected test per test function in tests/blender (parametrized ones give more)
    files = (ROOT / "tests" / "blender").glob("test_*.py")
    functions = sum(len(re.findall(r"^def test_", f.read_text(), re.M)) for f in files)
    for name, py in EXPECT.items():
        r = results.get(name)
        if r is None:
            continue
        if not r["blender"].startswith(name + ".") or not r["python"].startswith(py + "."):
            out.append(f"Blender {name}: the report says {r['blender']} with Python {r['python']}")
        if r["collected"] < functions or r["passed"] + r["failed"] + r["skipped"] != r["collected"]:
            out.append(f"Blender {name}: {r['collected']} collected ({functions} test functions), counts don't add up")
        if r["passed"] == 0 or len(r["failures"]) != r["failed"]:
            out.append(f"Blender {name}: nothing passed, or failures not listed")
        if (r["failed"] or r["skipped"] or r["exit"] != "ok") and not r["notes"]:
            out.append(f"Blender {name}: {r['failed']} failed, {r['skipped']} skipped, exit {r['exit']}, no note why")
    for name, r in report.get("offline_zip", {}).items():
        if r.get("ok") is False or (r.get("ok") is None and not r.get("notes")):
            out.append(f"offline zip on Blender {name}: {r}")
    return out


def test_matrix_report_is_honest():
    assert report_problems(json.loads(REPORT.read_text())) == []


@pytest.mark.parametrize("spoil", ["unexplained failure", "wrong python", "missing blender", "tests not run",
                                   "offline zip failed"])
def test_a_doctored_report_is_refused(spoil):
    report = copy.deepcopy(json.loads(REPORT.read_text()))
    r = report["results"]["5.3"]
    if spoil == "unexplained failure":
        r["passed"] -= 1
        r["failed"] += 1
        r["failures"].append("test_x: boom")
        r["notes"] = ""
    elif spoil == "wrong python":
        r["python"] = "3.11.7"
    elif spoil == "missing blender":
        del report["results"]["4.2"]
    elif spoil == "tests not run":
        r["collected"] = r["passed"] = 3
    else:
        report.setdefault("offline_zip", {})["4.5"] = {"zip": "x.zip", "ok": False}
    assert report_problems(report)
