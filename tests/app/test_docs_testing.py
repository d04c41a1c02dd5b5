"""docs/testing.md's example test file, run as it is written, with pytest in a subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support.servers import REPO, UNIT

PAGE = REPO / "docs" / "testing.md"


def test_the_testing_guide_example_passes(tmp_path: Path) -> None:
    match = re.search(r'```python title="([^"]+)"\n(.*?)^```', PAGE.read_text(), re.S | re.M)
    assert match is not None, "docs/testing.md has no titled python block"
    (tmp_path / match[1]).write_text(match[2])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_mode=auto",
            match[1],
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120 * UNIT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
