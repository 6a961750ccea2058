"""The other processes' CPU load kept with each CPU measurement (sslbench.probe.cpu_load): a 2-thread timing on 2
cores beside a busy process is not the case's own (240 ms against 1.5 ms for Barlow Twins at D = N = 256 here).
The counters are parsed from a made-up /proc/stat, the arithmetic checked by hand, and the reading checked against
real spinning processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from sslbench.execution.bench import summary_line
from sslbench.execution.measure import Measurement, measure
from sslbench.probe import cpu_load
from sslbench.probe.cpu_load import busy_note

STAT = """cpu  1000 2000 300 9999 5 0 7 11 0 0
cpu0 100 200 30 5000 1 0 2 3 0 0
cpu1 900 1800 270 4999 4 0 5 8 0 0
cpu2 50 50 50 50 0 0 0 0 0 0
intr 1 2 3
ctxt 99
"""


def test_sample_sums_the_busy_fields_of_the_allowed_cpus(tmp_path, monkeypatch):
    p = tmp_path / "stat"
    p.write_text(STAT)
    monkeypatch.setattr(cpu_load, "_allowed", lambda: {0, 1})
    monkeypatch.setattr(os, "sysconf", lambda name: 100)
    s = cpu_load.sample(str(p))
    # user nice system irq softirq steal, cpu0 + cpu1 (cpu2 is not ours; the "cpu" total line is not summed)
    assert s.busy_s == pytest.approx(((100 + 200 + 30 + 0 + 2 + 3) + (900 + 1800 + 270 + 0 + 5 + 8)) / 100)
    monkeypatch.setattr(cpu_load, "_allowed", lambda: None)  # no affinity: every CPU line
    assert cpu_load.sample(str(p)).busy_s == pytest.approx(s.busy_s + 150 / 100)
    assert cpu_load.sample(str(tmp_path / "missing")) is None
    (tmp_path / "bad").write_text("cpu  1 2 3\nintr 4\n")
    assert cpu_load.sample(str(tmp_path / "bad")) is None  # no per-CPU line


def test_other_cores_and_contended_by_hand():
    a = cpu_load.Sample(busy_s=100.0, own_s=5.0, wall_s=10.0)
    b = cpu_load.Sample(busy_s=103.0, own_s=6.0, wall_s=11.0)  # 3 core-seconds busy in 1 s, 1 of them ours
    assert cpu_load.other_cores(a, b) == pytest.approx(2.0)
    assert cpu_load.other_cores(a, cpu_load.Sample(100.5, 6.0, 11.0)) == 0.0  # clock ticks: never negative
    assert cpu_load.other_cores(a, cpu_load.Sample(103.0, 6.0, 10.01)) is None  # too short to read
    assert cpu_load.other_cores(None, b) is None
    assert cpu_load.contended(1.0, 2, 2) and cpu_load.contended(2.0, 1, 2)
    assert not cpu_load.contended(0.4, 2, 2) and not cpu_load.contended(1.0, 1, 2)  # within the half-core slack
    assert not cpu_load.contended(None, 2, 2) and not cpu_load.contended(3.0, None, 2)


def test_the_bench_line_marks_a_busy_case_only():
    m = Measurement(status="ok", metrics={"time_median_s": 0.24, "time_iqr_s": 0.01, "repeats": 5,
                                          "peak_rss_bytes": 1 << 20, "peak_rss_delta_bytes": 0,
                                          "other_cpu_cores": 1.0, "torch_threads": 2, "cpu_cores": 2})
    assert summary_line(m).endswith("[busy: other processes used 1.0 of 2 cores beside its 2 thread(s)]")
    m.metrics["torch_threads"] = 1
    assert "busy" not in summary_line(m)
    assert busy_note({}) == ""  # records from before the reading


@pytest.mark.skipif(cpu_load.sample() is None, reason="needs /proc/stat")
def test_a_measurement_beside_spinning_processes_reads_their_load():
    """Two processes spinning on this process's cores while a case that sleeps is timed: the reading is their load
    (about the cores, minus whatever else this shared machine does; at least one core), and the case is
    contended at one thread."""
    spin = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 30: pass\n"
    n = cpu_load.cores()
    kids = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(n)]
    try:
        time.sleep(0.5)  # started and spinning
        m = measure(lambda: time.sleep(0.02), warmup=1, repeats=25)
    finally:
        for k in kids:
            k.kill()
            k.wait()
    assert m.ok, m.message
    x = m.metrics
    assert x["cpu_cores"] == n and x["torch_threads"] >= 1
    assert x["other_cpu_cores"] >= min(1.0, n - 0.5), x
    assert cpu_load.contended(x["other_cpu_cores"], 1, n) or n > 2


def test_a_training_run_keeps_the_others_load_and_its_line_marks_a_busy_one(tmp_path, monkeypatch):
    import torch

    from dist_train_cases import tiny_config
    from sslbench.execution.plan import _summary
    from sslbench.training import train as T

    # the tiny run trains for a few milliseconds on an idle machine, under the shortest window read by default
    monkeypatch.setattr(cpu_load, "MIN_WALL_S", 0.0)
    rec = T.train(tiny_config(tmp_path, eval=False, epochs=1, checkpoint_dir=None))
    m = rec["metrics"]
    assert rec["status"] == "ok"
    if cpu_load.sample() is not None:
        assert m["other_cpu_cores"] >= 0 and m["cpu_cores"] == cpu_load.cores()
        assert m["torch_threads"] == torch.get_num_threads()
    busy = {"train_time_s": 10.0, "other_cpu_cores": 1.8, "cpu_cores": 2, "torch_threads": 2}
    assert _summary("train", {"status": "ok", "metrics": busy}).endswith(
        "train 10.0 s [busy: other processes used 1.8 of 2 cores beside its 2 thread(s)]")
    assert "busy" not in _summary("train", {"status": "ok", "metrics": {**busy, "other_cpu_cores": 0.2}})
