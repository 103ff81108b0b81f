"""What ``pip install .`` ships: every data file the package reads at run time."""

import fnmatch
import subprocess
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "crypto_etl"


def test_every_data_file_of_the_package_is_listed_in_package_data():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["crypto_etl"]
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "."],
        cwd=PACKAGE,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    data = [name for name in tracked if not name.endswith(".py")]
    assert "dashboard/templates/page.html" in data
    unlisted = [n for n in data if not any(fnmatch.fnmatch(n, p) for p in patterns)]
    assert unlisted == [], f"add these to [tool.setuptools.package-data]: {unlisted}"
