"""Audit the pinned runtime requirements for known vulnerabilities (`make audit`).

Runs pip-audit on ``containers/etl/constraints.txt`` (every runtime package,
direct and transitive, at its exact version) and says which of three things
happened, so a green CI never hides an audit that did not run:

- exit 0, "no known vulnerabilities in N pinned packages";
- exit 1, the vulnerable packages and their advisories;
- exit 0, "advisory data unavailable" with the reason, when pip-audit could
  not reach its advisory service (PyPI's JSON API or OSV) for a package:
  those packages are named as NOT audited.

    python deploy_helpers/audit_deps.py [PIP_AUDIT]
"""

from __future__ import annotations

import json
import subprocess  # nosec B404: runs pip-audit, an argument list, no shell
import sys
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parents[1] / "containers/etl/constraints.txt"


def main(argv: list[str]) -> int:
    pip_audit = argv[1] if len(argv) > 1 else "pip-audit"
    done = subprocess.run(  # nosec B603
        [pip_audit, "-r", str(REQUIREMENTS), "--no-deps", "--disable-pip"]
        + ["--format", "json", "--progress-spinner", "off"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        report = json.loads(done.stdout)
    except ValueError:
        print(
            "audit: advisory data unavailable: pip-audit gave no report "
            f"(exit {done.returncode}): {done.stderr.strip()[-300:]}"
        )
        return 0
    packages = report.get("dependencies", [])
    skipped = [p["name"] for p in packages if p.get("skip_reason")]
    vulnerable = [p for p in packages if p.get("vulns")]
    for package in vulnerable:
        for vuln in package["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
            print(
                f"audit: {package['name']} {package['version']}: {vuln['id']} "
                f"(fixed in {fixed})"
            )
    audited = len(packages) - len(skipped)
    if skipped:
        print(
            f"audit: advisory data unavailable for {len(skipped)} of "
            f"{len(packages)} pinned packages (pip-audit could not reach its "
            f"advisory service from here); NOT audited: {', '.join(skipped)}"
        )
    if vulnerable:
        return 1
    if audited:
        print(f"audit: no known vulnerabilities in {audited} audited pinned packages")
    else:
        print("audit: nothing was audited; rerun where PyPI's JSON API is reachable")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
