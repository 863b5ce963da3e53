"""The README's pictures (docs/pictures/*.svg) are what scripts/pictures draws today."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_pictures_are_current() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "pictures"), "--check"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr + "\n(run scripts/pictures and commit the result)"


def test_the_readme_shows_them_and_they_parse() -> None:
    readme = (ROOT / "README.md").read_text()
    pictures = sorted((ROOT / "docs" / "pictures").glob("*.svg"))
    assert pictures
    for p in pictures:
        assert f"docs/pictures/{p.name}" in readme
        ET.parse(p)
    text = " ".join(ET.parse(ROOT / "docs" / "pictures" / "mainline.svg").getroot().itertext()).replace("\xa0", " ")
    assert "p 3" in text and "s 509" in text
