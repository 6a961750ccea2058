"""The real dashboard server on localhost against the committed ``results/``, seen by a headless Chromium.

Starts ``streamlit run dashboard/app.py`` on a free port, waits for ``/_stcore/health``, opens each page in
Chromium (DevTools protocol, ``dashboard/screenshots.py``), waits until the script has finished and the expected
plotly charts have drawn their traces (a page without its kind of results must show its how-to message
instead), and checks that each screenshot is a real rendering: the viewport's size, more than a few kilobytes and
hundreds of distinct colours (a blank or skeleton page has a handful). Skipped when Chromium is not installed
(``apt-get install chromium``). About 40 s on 2 cores.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("streamlit")
pytest.importorskip("websockets")
pytest.importorskip("PIL")


def _screenshots():
    spec = importlib.util.spec_from_file_location("dashboard_screenshots", ROOT / "dashboard" / "screenshots.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


S = _screenshots()
CHROMIUM = S.find_chromium()


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_every_page_renders_in_a_real_browser(tmp_path):
    results = ROOT / "results"
    expected = S.expected_charts(results)
    assert expected["Scaling"] == 1, "the committed results hold regularizer benchmarks"
    with open(tmp_path / "server.log", "wb") as log:
        report = S.take_all(results, tmp_path, width=1400, height=1000, chromium=CHROMIUM, log=log)
    assert set(report) == set(S.PAGES)
    for page, r in report.items():
        assert Path(r["path"]).is_file(), page
        assert (r["width"], r["height"]) == (1400, 1000), (page, r)
        assert r["exceptions"] == 0 and r["state"] == "notRunning", (page, r)
        assert r["drawn"] >= r["expected_charts"], (page, r)
        if page == "Claims":
            assert r["tables"] >= 1, (page, r)  # the verdict table
        elif r["expected_charts"] == 0:
            assert r["alerts"] >= 1, (page, r)  # the page's how-to message
        assert r["bytes"] > 20_000 and r["colours"] > 300, (page, r)  # not blank, not the loading skeleton
        assert r["bytes"] <= 400 * 1024, (page, r)


def test_png_stats_tell_a_blank_page_from_a_chart(tmp_path):
    from PIL import Image, ImageDraw

    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 100), "white").save(blank)
    assert S.png_stats(blank)["colours"] == 1
    drawn = tmp_path / "drawn.png"
    im = Image.new("RGB", (200, 100), "white")
    d = ImageDraw.Draw(im)
    for i in range(50):
        d.line([(0, 2 * i), (199, 99 - i)], fill=(5 * i, 255 - 5 * i, 128), width=1)
    im.save(drawn)
    assert S.png_stats(drawn)["colours"] > 40
    # shrinking to a palette keeps the picture and its size limit
    big = tmp_path / "big.png"
    Image.effect_noise((600, 600), 100).convert("RGB").save(big)
    before = big.stat().st_size
    assert S.shrink(big, before + 1) == before  # under the limit: untouched
    size = S.shrink(big, 100 * 1024)
    assert size == big.stat().st_size < before and S.png_stats(big)["width"] == 600


def test_stage_results_keeps_the_committed_files_and_their_runs_logs(tmp_path):
    import subprocess

    import results_fixtures as F
    from sslbench.records import append_record

    repo = tmp_path / "repo"
    results = repo / "results"
    (results / "runs").mkdir(parents=True)
    (repo / ".gitignore").write_text("results/runs/\nresults/demo/\n")
    train = F.train_records()[0]
    train["extra"]["log"] = str(results / "runs" / f"{train['id']}.jsonl")
    F.write_run_log(results / "runs" / f"{train['id']}.jsonl", train)
    (results / "runs" / "unrelated.jsonl").write_text("{}\n")
    append_record(results / "train.jsonl", train)
    F.write_bench_store(results / "sweeps" / "new.jsonl", corrupt_line=False)  # not committed (yet)
    F.write_bench_store(results / "demo" / "bench.jsonl", corrupt_line=False)  # ignored scratch output
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(git + ["init", "-q"], cwd=repo, check=True)
    subprocess.run(git + ["add", ".gitignore", "results/train.jsonl"], cwd=repo, check=True)
    subprocess.run(git + ["commit", "-qm", "x"], cwd=repo, check=True)
    staged = S.stage_results(results, tmp_path / "staged")
    got = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file())
    assert got == sorted(["train.jsonl", f"runs/{train['id']}.jsonl"])
