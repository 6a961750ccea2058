"""The README and the docs/ pages: every link resolves, nothing points outside the repository, the README opens
on the three jobs, and a figure is quoted in one place.

The link check reads the Markdown itself (no mkdocs needed): a relative link must name a file of the checkout, a
link from a docs page must stay inside docs/ (the site that mkdocs.yml builds holds nothing else), and a
``#heading`` anchor must be a heading of the target page, slugged as Python-Markdown's ``toc`` extension does.
Where mkdocs is installed (``pip install 'sslbench[docs]'``), ``mkdocs build --strict`` must pass too.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def prose(text: str) -> str:
    """The Markdown without fenced blocks and code spans (where a bracket is code, not a link)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def links(text: str) -> list[str]:
    return LINK.findall(prose(text))


def slug(heading: str) -> str:
    """Python-Markdown's toc slugify of a heading's text (code spans and emphasis marks removed first)."""
    text = re.sub(r"[`*]", "", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading counts by its text
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    return {slug(h) for h in HEADING.findall(FENCE.sub("", page.read_text()))}


def broken_links(page: Path) -> list[str]:
    """Each relative link of ``page`` that names no file, leaves docs/ from a docs page, or no heading."""
    bad = []
    for target in links(page.read_text()):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
            continue
        if page.parent == DOCS and DOCS not in dest.parents:
            bad.append(f"{target}: outside docs/, which the site does not contain")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no heading with that anchor in {dest.name}")
    return bad


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves(page):
    assert broken_links(page) == []


def test_the_link_check_finds_what_is_broken(tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A page\n\n## Its part\n")
    (tmp_path / "README.md").write_text("x")
    page = docs / "b.md"
    page.write_text("[ok](a.md) [ok](a.md#its-part) [web](https://example.org) `[code](nowhere.md)`\n"
                    "[gone](missing.md) [anchor](a.md#no-part) [out](../README.md)\n"
                    "```\n[fenced](nowhere.md)\n```\n")
    monkeypatch.setattr(sys.modules[__name__], "DOCS", docs)
    assert broken_links(page) == ["missing.md: no such file", "a.md#no-part: no heading with that anchor in a.md",
                                  "../README.md: outside docs/, which the site does not contain"]


@pytest.mark.parametrize("heading, expected", [
    ("§3 FFT-relaxed decorrelation (`barlow_twins_fft`, `vicreg_fft`)",
     "3-fft-relaxed-decorrelation-barlow_twins_fft-vicreg_fft"),
    ("One store, many writers: the design and why", "one-store-many-writers-the-design-and-why"),
    ("Claims of the seed papers: `sslbench report`", "claims-of-the-seed-papers-sslbench-report"),
])
def test_slug_is_python_markdowns(heading, expected):
    assert slug(heading) == expected
    if importlib.util.find_spec("markdown"):
        import markdown
        html = markdown.markdown(f"# {heading}", extensions=["toc"])
        assert f'id="{expected}"' in html


def test_nothing_points_outside_the_repository():
    """A clone has no ../shared/ or /work/: the math and the facts live in docs/ and the docstrings."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    outside = re.compile(r"\.\./shared/|/work/")
    hits = []
    for name in tracked:
        path = ROOT / name
        if path.suffix not in {".md", ".py", ".toml", ".sh", ".cfg", ".yml", ".yaml", ".json", ".txt"} \
                or not path.is_file() or name == "tests/test_docs.py":
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if outside.search(line):
                hits.append(f"{name}:{number}: {line.strip()[:100]}")
    assert hits == []


def first_screen() -> str:
    return "\n".join((ROOT / "README.md").read_text().splitlines()[:45])


@pytest.mark.parametrize("command", [
    "asv continuous --factor 1.5 main HEAD",                                          # 1. a regression
    "make dashboard",                                                                  # 2. scaling curves
    "bash benchmarks/gpu_e2e.sh --data /usr/share/datasets/fashion-mnist --results",   # 3. accuracy on a GPU
    "make demo", "make test",                                                          # set-up
    "docs/plugins.md",                                                                 # your own regularizer
])
def test_the_readme_opens_on_the_three_jobs(command):
    assert command in first_screen()


def test_the_gpu_command_is_the_documented_one():
    """The README's job 3 runs the script that docs/gpu-benchmarks.md documents, with the options it has."""
    (line,) = [l for l in first_screen().splitlines() if l.startswith("bash benchmarks/gpu_e2e.sh")]
    script = (ROOT / "benchmarks" / "gpu_e2e.sh").read_text() + (ROOT / "benchmarks" / "gpu_e2e.py").read_text()
    for option in re.findall(r"--[a-z-]+", line):
        assert option in script, option
    assert "benchmarks/gpu_e2e.sh" in (DOCS / "gpu-benchmarks.md").read_text()


@pytest.mark.parametrize("figure", ["89.59 %", "86.99 %", "244.5 s", "6 min 47 s", "1 344 ms", "2.17"])
def test_a_headline_figure_is_quoted_once(figure):
    """The README's headline figures live in the README alone; the docs pages point to it."""
    counts = {str(p.relative_to(ROOT)): " ".join(p.read_text().split()).count(figure) for p in PAGES}
    assert counts["README.md"] == 1
    assert sum(counts.values()) == 1, {k: v for k, v in counts.items() if v}


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed (sslbench[docs])")
def test_mkdocs_build_strict(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_dashboard_headline_is_the_sweep_store():
    """Job 2's figure: Barlow Twins at D = 8192, N = 256 in both algorithms, medians of the committed store."""
    import json
    medians = {}
    for line in (ROOT / "results" / "sweeps" / "cpu-intel-xeon-scaling-dim.jsonl").read_text().splitlines():
        record = json.loads(line)
        case = record["case"]
        if (case.get("regularizer"), case.get("dim"), case.get("batch"), record["status"]) == \
                ("barlow_twins", 8192, 256, "ok"):
            medians[case["algorithm"]] = record["metrics"]["time_median_s"] * 1000
    screen = " ".join(first_screen().split())
    primal, gram = (f"{medians[a]:,.0f}".replace(",", " ") for a in ("cross_correlation", "gram"))
    assert f"{primal} ms in the primal form, {gram} ms in the exact Gram form" in screen


def test_the_demo_headline_is_the_recorded_run():
    """Job 3's CPU figure: make demo trains the default run, recorded by the sweep that chose the defaults (same
    seed and settings, so the same accuracy; the README adds the clean clone's times)."""
    import json
    (record,) = [json.loads(line) for line in
                 (ROOT / "results" / "sweeps" / "cpu-default" / "runs.jsonl").read_text().splitlines()
                 if json.loads(line)["id"] == "3d54ccffc70d8c49"]
    m = record["metrics"]
    screen = " ".join(first_screen().split())
    assert (f"{m['linear_top1']:.2f} % linear probe against {m['init_linear_top1']:.2f} % at initialisation "
            f"(kNN {m['knn_top1']:.2f} vs {m['init_knn_top1']:.2f} %)") in screen
