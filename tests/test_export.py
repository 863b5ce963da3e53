"""Pictures: `export svg|html|txt|session FILE`, `mmshell run --export DIR`, `mmshell run --html OUT.html`.

The page is opened in a real headless browser (Debian's chromium; .ci/run installs it
when missing, and the test says why it skips when there is none): arrow keys are
pressed by a small script added to a copy of the page, and the DOM the browser ends
with says which step is shown.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mmshell.report import run_sources

ROUND_TRIP = ("set pmd_swap off; swapon z 64M; mmap a 2M hugepage; touch a; madvise a pageout; "
              "touch a+0x0:12K read")


def run(text: str, **kw) -> int:
    return run_sources([("-c", text)], debug_vm=True, **kw)


def test_export_the_last_step_as_svg_html_and_text(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(ROUND_TRIP + "; show map; export svg m.svg; export html m.html; export txt m.txt") == 0
    out = capsys.readouterr().out
    assert "exported 1 step as svg to m.svg" in out
    root = ET.parse(tmp_path / "m.svg").getroot()
    assert root.tag.endswith("svg")
    svg = (tmp_path / "m.svg").read_text()
    assert "@font-face" not in svg and "cdnjs" not in svg          # nothing to fetch
    assert "#ffffff" in svg.lower()                                # the light theme
    txt = (tmp_path / "m.txt").read_text()
    assert txt.startswith("-c:1  show map") and "p 3" in txt and "s 509" in txt
    assert max(len(ln) for ln in txt.splitlines()) <= 100
    assert "s s s" in (tmp_path / "m.html").read_text()


def test_export_session_takes_its_format_from_the_suffix(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(ROUND_TRIP + "; export session all.svg") == 0
    assert "exported 6 steps as svg to all.svg" in capsys.readouterr().out
    ET.parse(tmp_path / "all.svg")
    assert run("mmap a 2M; export session all.pdf") == 2
    assert "export session writes .svg, .html or .txt" in capsys.readouterr().out
    assert run("export svg first.svg") == 2
    assert "no step to export yet" in capsys.readouterr().out


def test_export_to_an_unwritable_place_is_refused(tmp_path, capsys) -> None:
    assert run(f"mmap a 2M; export svg {tmp_path}/no/such/dir/a.svg") == 2
    assert "export: ENOENT: cannot write" in capsys.readouterr().out


def test_run_export_writes_one_svg_per_step_and_an_index(tmp_path, capsys) -> None:
    from mmshell.export import Pictures

    script = tmp_path / "rt.mmsh"
    script.write_text(ROUND_TRIP.replace("; ", "\n") + "\nshow map\n")
    assert run_sources([(str(script), script.read_text())], quiet=True,
                       pictures=Pictures(str(tmp_path / "out"), None, 100)) == 0
    svgs = sorted((tmp_path / "out").glob("*.svg"))
    assert [p.name for p in svgs] == [f"step-{i:03d}.svg" for i in range(1, 8)]
    for p in svgs:
        ET.parse(p)
    index = (tmp_path / "out" / "index.html").read_text()
    assert index.count("<img ") == 7 and "show map" in index
    assert "p p p s s" in "".join(t for t in ET.parse(svgs[-1]).getroot().itertext()).replace("\xa0", " ")


def write_page(tmp_path: Path) -> Path:
    from mmshell.export import Pictures

    script = tmp_path / "rt.mmsh"
    script.write_text(ROUND_TRIP.replace("; ", "\n") + "\n")
    page = tmp_path / "rt.html"
    assert run_sources([(str(script), script.read_text())], quiet=True, pictures=Pictures(None, str(page))) == 0
    return page


def test_the_page_is_self_contained(tmp_path) -> None:
    text = write_page(tmp_path).read_text()
    assert not re.search(r"https?://", text)
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=", text)
    assert text.count('<section class="step"') == 6
    assert "map of pid 1 after the step" in text


def _browser() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


BROWSER_SKIP = None if _browser() else ("no chromium here: the --html page is tested in a real headless browser "
                                        "(apt-get install chromium; .ci/run installs it)")


def _dom_after_keys(page: Path, keys: list[str], tmp_path: Path) -> str:
    """The DOM of the page in headless chromium after the keys are pressed."""
    press = "".join(f'document.dispatchEvent(new KeyboardEvent("keydown", {{key: "{k}"}}));' for k in keys)
    copy = tmp_path / "pressed.html"
    copy.write_text(page.read_text().replace("</body>", f"<script>{press}</script></body>"))
    browser = _browser()
    assert browser is not None
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                           copy.as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _shown(dom: str) -> list[str]:
    return re.findall(r'<section class="step" data-index="(\d+)">', dom)


@pytest.mark.skipif(BROWSER_SKIP is not None, reason=BROWSER_SKIP or "")
def test_the_page_steps_with_the_arrow_keys_in_a_browser(tmp_path) -> None:
    page = write_page(tmp_path)
    dom = _dom_after_keys(page, [], tmp_path)
    assert _shown(dom) == ["0"] and "step 1 of 6" in dom
    dom = _dom_after_keys(page, ["ArrowRight"] * 7 + ["ArrowLeft"], tmp_path)
    assert _shown(dom) == ["4"] and "step 5 of 6" in dom
    shown = dom.split('data-index="4">')[1].split("</section>")[0]
    assert "madvise a pageout" in shown and "thp_split_pmd" in shown
    dom = _dom_after_keys(page, ["End"], tmp_path)
    last = dom.split('data-index="5">')[1].split("</section>")[0]
    assert _shown(dom) == ["5"] and "touch a+0x0:12K read" in last and "p 3" in last and "s 509" in last
