"""The dashboard treats a plugin like a built-in: records of ``mypkg.losses:MyLoss`` beside ``barlow_twins`` give one
fitted series each on the Scaling page, labelled by the spec (torch-free, fixture records)."""

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("plotly")

import results_fixtures as F  # noqa: E402
from sslbench.records import append_record, make_record  # noqa: E402
from test_dashboard import names, only_chart, rerun, run_app, widget  # noqa: E402

PLUGIN = "mypkg.losses:MyLoss"


def test_scaling_page_plots_a_plugin_series_under_its_spec(monkeypatch, tmp_path):
    root = tmp_path / "results"
    root.mkdir()
    for d in F.DIMS:
        append_record(root / "bench.jsonl", F._bench_record("barlow_twins", None, d, 256))
        t = 1e-6 * d ** 3  # the plugin's own law: D³
        case = {"regularizer": PLUGIN, "dim": d, "batch": 256, "views": 2, "device": "cpu", "dtype": "float32"}
        metrics = {"time_median_s": t, "time_q25_s": t * 0.95, "time_q75_s": t * 1.05, "time_iqr_s": t * 0.1,
                   "repeats": 5, "peak_rss_bytes": 200_000_000, "peak_rss_delta_bytes": 1000 * d}
        append_record(root / "bench.jsonl", make_record(
            "regularizer_bench", case, metrics, env=F.ENV,
            extra={"regularizer_source": {"spec": PLUGIN, "kind": "module", "distribution": "mypkg"}}))
    at = run_app(monkeypatch, root)
    widget(at, "selectbox", "N (fixed)").set_value(256)
    labels = names(only_chart(rerun(at)))
    assert f"{PLUGIN}  (α=3.00)" in labels, labels
    assert any(str(label).startswith("barlow_twins  (α=") for label in labels), labels
