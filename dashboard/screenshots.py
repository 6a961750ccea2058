"""Screenshots of the dashboard's pages from the real server, taken with headless Chromium.

Starts ``streamlit run dashboard/app.py`` on a free localhost port, waits for ``/_stcore/health``, then drives a
headless Chromium through the DevTools protocol: for each page it opens ``http://localhost:PORT/?page=<Page>``,
waits until the script has finished running and the expected plotly charts have drawn their traces, and saves a
PNG (``docs/img/dashboard-<page>.png`` by default, reduced to a palette when larger than ``--max-kb``).

The server reads a copy of the committed ``results/`` (the files git tracks: local scratch output such as
``results/demo/`` and results not committed yet stay out) plus the per-step logs of those training runs when they
are on this machine (``results/runs/`` is git-ignored); ``--as-is`` serves the folder as it is. Rerun it after new
results are committed::

    python dashboard/screenshots.py                       # results/ -> docs/img/dashboard-*.png
    python dashboard/screenshots.py --results /tmp/r --out /tmp/shots --pages Scaling Runs

Needs Chromium (Debian: ``apt-get install chromium``; or set ``$CHROMIUM``), pillow, and the ``websockets``
package (a dependency of streamlit's server). ``tests/test_dashboard_browser.py`` uses the same functions.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboard" / "app.py"
if str(ROOT) not in sys.path:  # `python dashboard/screenshots.py` puts dashboard/ first, not the repository
    sys.path.insert(0, str(ROOT))
from sslbench.dashboard import stop_process  # noqa: E402

PAGES = ("Scaling", "Accuracy", "Regressions", "Runs", "Claims")

# what the page shows once it is done: the script's state, plotly charts with drawn traces, alerts, spinners
PROBE = """(() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  const drawn = plots.filter(p => p.querySelector('.main-svg .scatterlayer .trace')).length;
  return JSON.stringify({
    state: app ? app.getAttribute('data-test-script-state') : null,
    charts: plots.length, drawn: drawn,
    alerts: document.querySelectorAll('[data-testid="stAlert"]').length,
    tables: document.querySelectorAll('[data-testid="stDataFrame"]').length,
    exceptions: document.querySelectorAll('[data-testid="stException"]').length,
    spinners: document.querySelectorAll('[data-testid="stSpinner"], [data-testid="stSkeleton"]').length,
  });
})()"""


def find_chromium() -> str | None:
    """``$CHROMIUM``, else the first of chromium, chromium-browser, google-chrome(-stable) on the PATH."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env if Path(env).exists() or shutil.which(env) else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - localhost only
        return r.read()


@contextlib.contextmanager
def serve(results: str | os.PathLike, port: int | None = None, *, timeout: float = 90.0, log=None):
    """Run the dashboard on ``localhost:port`` (a free port by default) against ``results``; yields its URL
    once ``/_stcore/health`` answers ok, and stops the server on exit."""
    port = port or free_port()
    env = dict(os.environ, SSLBENCH_RESULTS=str(Path(results).resolve()))
    env.pop("SSLBENCH_ASV", None)
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", "localhost",
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal"]
    out = log if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=str(ROOT))
    url = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the dashboard server exited with code {proc.returncode} before it was healthy")
            try:
                if _get(url + "/_stcore/health").strip() == b"ok":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the dashboard server did not answer {url}/_stcore/health in {timeout:.0f} s")
            time.sleep(0.3)
        yield url
    finally:
        stop_process(proc, grace_s=15)


class Browser:
    """A headless Chromium driven through the DevTools protocol (one tab)."""

    def __init__(self, chromium: str, width: int = 1400, height: int = 1000, timeout: float = 30.0):
        from websockets.sync.client import connect

        self._dir = tempfile.mkdtemp(prefix="sslbench-chromium-")
        self.proc = subprocess.Popen(
            [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--no-first-run",
             "--disable-dev-shm-usage", "--mute-audio", f"--window-size={width},{height}",
             "--remote-debugging-port=0", "--remote-allow-origins=*", f"--user-data-dir={self._dir}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port_file = Path(self._dir) / "DevToolsActivePort"
            deadline = time.monotonic() + timeout
            while not (port_file.exists() and port_file.read_text().strip()):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{chromium} exited with code {self.proc.returncode} at start")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{chromium} did not open its DevTools port in {timeout:.0f} s")
                time.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            while True:
                targets = [t for t in json.loads(_get(f"http://127.0.0.1:{port}/json/list"))
                           if t.get("type") == "page"]
                if targets:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError("Chromium opened no page")
                time.sleep(0.1)
            self._ws_cm = connect(targets[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=timeout)
            self.ws = self._ws_cm.__enter__()
            self._id = 0
            self.call("Page.enable")
            self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                      mobile=False)
        except BaseException:
            self.close()
            raise

    def call(self, method: str, timeout: float = 60.0, **params):
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._ws_cm.__exit__(None, None, None)
        stop_process(self.proc)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def wait_rendered(browser: Browser, min_charts: int, timeout: float = 90.0, settle: float = 1.5) -> dict:
    """Wait until the app has finished its run and shows ``min_charts`` drawn plotly charts (or, for
    ``min_charts=0``, an alert or a table), the same for two polls in a row; then ``settle`` seconds for the last paint.
    Returns the last probe; raises TimeoutError with it when the page does not get there."""
    deadline = time.monotonic() + timeout
    last, stable = None, 0
    while time.monotonic() < deadline:
        probe = json.loads(browser.evaluate(PROBE) or "{}")
        done = (probe.get("state") == "notRunning" and probe.get("spinners", 0) == 0
                and (probe.get("drawn", 0) >= min_charts if min_charts else
                     probe.get("alerts", 0) + probe.get("drawn", 0) + probe.get("tables", 0) > 0))
        stable = stable + 1 if done and probe == last else 0
        last = probe
        if probe.get("exceptions"):
            raise RuntimeError(f"the page shows an exception: {probe}")
        if stable >= 2:
            time.sleep(settle)
            return json.loads(browser.evaluate(PROBE) or "{}")
        time.sleep(0.5)
    raise TimeoutError(f"the page did not finish rendering in {timeout:.0f} s (last state {last})")


def screenshot(browser: Browser, url: str, path: str | os.PathLike, *, min_charts: int = 1,
               timeout: float = 90.0) -> dict:
    """Open ``url``, wait for it (:func:`wait_rendered`) and save a PNG of the viewport to ``path``."""
    browser.call("Page.navigate", url=url)
    probe = wait_rendered(browser, min_charts, timeout=timeout)
    data = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return probe


def shrink(path: str | os.PathLike, max_bytes: int) -> int:
    """Reduce a PNG above ``max_bytes`` to an adaptive 256-colour palette (charts survive it); the new size."""
    from PIL import Image

    path = Path(path)
    if path.stat().st_size <= max_bytes:
        return path.stat().st_size
    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        buf = io.BytesIO()
        small.save(buf, format="PNG", optimize=True)
    path.write_bytes(buf.getvalue())
    return path.stat().st_size


def png_stats(path: str | os.PathLike) -> dict:
    """Width, height, bytes and number of distinct colours of a PNG (a blank or skeleton page has a handful)."""
    from PIL import Image

    with Image.open(path) as im:
        rgb = im.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20)
        return {"width": rgb.width, "height": rgb.height, "bytes": Path(path).stat().st_size,
                "colours": len(colours) if colours is not None else 1 << 20}


def stage_results(results: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Copy to ``dest`` what a checkout of the repository has under ``results``: the files git tracks (so local
    scratch output such as ``results/demo/`` and results not committed yet stay out), plus the per-step logs of
    those training runs (``extra.log`` of their records; ``results/runs/`` is git-ignored) when they exist here.
    Outside a git checkout the whole folder is copied. Returns ``dest``."""
    import warnings

    from sslbench.records import read_records

    results, dest = Path(results).resolve(), Path(dest)
    proc = subprocess.run(["git", "ls-files", "-z", "--", "."], cwd=results,
                          capture_output=True)
    if proc.returncode != 0:
        shutil.copytree(results, dest, dirs_exist_ok=True)
        return dest
    files = [results / f for f in proc.stdout.decode().split("\0") if f]
    for f in files:
        if f.is_file():
            (dest / f.relative_to(results)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest / f.relative_to(results))
    for f in files:
        if f.suffix != ".jsonl" or not f.is_file():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            records = read_records(f, kind="train")
        for rec in records:
            log = rec.get("extra", {}).get("log")
            if not log:
                continue
            path = Path(log) if Path(log).is_absolute() else ROOT / log
            try:
                rel = path.resolve().relative_to(results)
            except ValueError:
                continue
            if path.is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest / rel)
    return dest


def expected_charts(results: str | os.PathLike) -> dict[str, int]:
    """How many drawn charts each page should show for ``results`` (0: the page's how-to message)."""
    import warnings

    from sslbench import analysis as A

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = A.load_results(results)
        logs = A.find_run_logs(results)
    kinds = set(df["kind"]) if not df.empty else set()
    train_ok = not df.empty and ((df["kind"] == "train") & (df["status"] == "ok")).any()
    return {
        "Scaling": 1 if kinds & set(A.SCALING_KINDS) else 0,
        "Accuracy": 2 if train_ok else 0,
        "Regressions": 1 if not A.regressions(df).empty else 0,
        "Runs": 1 if logs else 0,
        "Claims": 0,  # a table (st.dataframe), no plotly chart
    }


def take_all(results: str | os.PathLike, out: str | os.PathLike, pages=PAGES, *, width: int = 1400,
             height: int = 1000, max_kb: int = 390, chromium: str | None = None, log=None,
             as_is: bool = False) -> dict[str, dict]:
    """Screenshots of ``pages`` for ``results`` into ``out/dashboard-<page>.png``; per page the probe and the
    PNG's statistics. The server reads a staged copy (:func:`stage_results`) unless ``as_is``."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("no Chromium found (apt-get install chromium, or set $CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="sslbench-results-") as tmp:
        if not as_is:
            results = stage_results(results, Path(tmp) / "results")
        return _take_all(results, out, pages, width, height, max_kb, chromium, log)


def _take_all(results, out, pages, width, height, max_kb, chromium, log) -> dict[str, dict]:
    expect = expected_charts(results)
    report = {}
    with serve(results, log=log) as url, Browser(chromium, width, height) as browser:
        for page in pages:
            path = Path(out) / f"dashboard-{page.lower()}.png"
            probe = screenshot(browser, f"{url}/?page={page}", path, min_charts=expect[page])
            shrink(path, max_kb * 1024)
            report[page] = {"path": str(path), "expected_charts": expect[page], **probe, **png_stats(path)}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(ROOT / "results"), help="results folder (default: results/)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"), help="folder of the PNGs (default docs/img)")
    parser.add_argument("--pages", nargs="+", default=list(PAGES), choices=list(PAGES))
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--max-kb", type=int, default=390, help="reduce larger PNGs to a palette (default 390)")
    parser.add_argument("--as-is", action="store_true",
                        help="serve the results folder as it is (default: its committed files, plus the logs of "
                             "their training runs; see stage_results)")
    args = parser.parse_args(argv)
    try:
        report = take_all(args.results, args.out, args.pages, width=args.width, height=args.height,
                          max_kb=args.max_kb, as_is=args.as_is)
    except (FileNotFoundError, RuntimeError, TimeoutError) as exc:
        print(f"screenshots: {exc}", file=sys.stderr)
        return 1
    for page, r in report.items():
        print(f"{page}: {r['path']} ({r['width']}x{r['height']}, {r['bytes'] / 1024:.0f} KiB, {r['colours']} colours, "
              f"{r['drawn']} chart(s) drawn, expected {r['expected_charts']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
