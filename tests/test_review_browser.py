"""The review page in a real browser: headless Chromium (Debian package ``chromium``) loads it,
decodes every embedded picture, lays it out without horizontal overflow, and screenshots it.
Skipped where no Chromium is installed (``apt-get install chromium``)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from _proposal_campaign import make_campaign, propose_by_hand

from alem.hops import load_training_hops
from alem.review import LiteratureIndex, write_review

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium)")
WINDOW = (1200, 900)
#: Loaded after the page: counts the pictures the browser decoded and the page's laid-out width.
PROBE = (
    "<script>window.addEventListener('load',()=>{const ok=[...document.images].filter("
    "i=>i.complete&&i.naturalWidth>300).length;document.body.dataset.decodedImages=ok;"
    "document.body.dataset.pageWidth=document.documentElement.scrollWidth})</script></body>"
)


def chromium(user_data_dir, *args) -> subprocess.CompletedProcess:
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={user_data_dir}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=True)


def test_the_review_page_renders_in_headless_chromium(tmp_path):
    config, hop_ids = make_campaign(tmp_path, n_hops=3)
    propose_by_hand(config, hop_ids)
    index = LiteratureIndex(load_training_hops()[:80])  # neighbours are not what this test checks
    page, n_cards = write_review(config, tmp_path / "review.html", index=index)
    assert n_cards == 3
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", PROBE))

    dom = chromium(tmp_path / "profile-dom", "--dump-dom", probe.as_uri()).stdout
    body = re.search(r"<body([^>]*)>", dom).group(1)
    assert 'data-decoded-images="3"' in body  # every card's picture decoded by the browser
    width = int(re.search(r'data-page-width="(\d+)"', body).group(1))
    assert width <= WINDOW[0]  # nothing pushes the page sideways
    for hop_id in hop_ids:
        assert f'id="{hop_id}"' in dom and f"alem approve {hop_id}" in dom

    shot = tmp_path / "review.png"
    chromium(tmp_path / "profile-shot", "--hide-scrollbars", f"--screenshot={shot}", page.as_uri())
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    assert image.size == WINDOW
    colours = image.getcolors(maxcolors=1 << 20)
    assert len(colours) > 500  # text, atoms and tables drawn, not a blank page
    assert any(rgb == (0x1E, 0x1E, 0x2A) for _, rgb in colours)  # the page's style applied (command block)
