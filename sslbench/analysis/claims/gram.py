"""Study ``gram``: the exact Gram form of the Barlow Twins / VICReg losses (regularizers.md §1). The same values and
gradients, and the same training curves, as the cross-correlation form (the exact checks "values" and "curves"),
and its measured speed-up where N < D (bench records of both algorithms at the same shape)."""

from __future__ import annotations

import pandas as pd

from sslbench.analysis.claims.common import Study, Verdict, bench_records, check_verdict, device_short, int_text, num

#: exact Gram form: relative difference of values and gradients (float32 / float64) and of logged training losses
GRAM_TOL_F32 = 1e-4
GRAM_TOL_F64 = 1e-10
GRAM_CURVE_TOL = 1e-3
#: a speed-up counts when above this
SPEEDUP_MIN = 1.2

RULE_VALUES = f"max relative difference ≤ {GRAM_TOL_F32:g} (float32) and ≤ {GRAM_TOL_F64:g} (float64)"
RULE_CURVES = (f"two training runs with the same seed, algorithm gram vs cross_correlation: max relative difference "
               f"of the logged losses ≤ {GRAM_CURVE_TOL:g}")
RULE_SPEEDUP = (f"speed-up = time(cross_correlation) / time(gram) at the same shape; supported when > {SPEEDUP_MIN} "
                "at some N < D")
#: the metrics of the exact checks that their rules read
VALUES_NEEDS = ("value_rel_diff_float32", "grad_rel_diff_float32", "value_rel_diff_float64", "grad_rel_diff_float64",
                "shapes")
CURVES_NEEDS = ("loss_rel_diff", "steps", "runs", "dim", "batch")


def _judge_values(m: dict[str, float]) -> tuple[str, str]:
    f32 = max(m["value_rel_diff_float32"], m["grad_rel_diff_float32"])
    f64 = max(m["value_rel_diff_float64"], m["grad_rel_diff_float64"])
    v = "supported" if f32 <= GRAM_TOL_F32 and f64 <= GRAM_TOL_F64 else "not supported"
    return v, (f"barlow_twins, vicreg over {int(m['shapes'])} shapes: value {num(m['value_rel_diff_float32'])} / "
               f"grad {num(m['grad_rel_diff_float32'])} (float32); value {num(m['value_rel_diff_float64'])} / grad "
               f"{num(m['grad_rel_diff_float64'])} (float64)")


def _judge_curves(m: dict[str, float]) -> tuple[str, str]:
    d = m["loss_rel_diff"]
    v = "supported" if d <= GRAM_CURVE_TOL else "not supported"
    return v, (f"max rel. diff {num(d)} over {int(m['steps'])} steps × {int(m['runs'])} regularizers (synthetic "
               f"data, D={int(m['dim'])}, N={int(m['batch'])})")


def _speedup_row(sp: pd.DataFrame) -> tuple[str, str]:
    """(verdict, figures) of one device's speed-ups (columns regularizer, batch, dim, speedup)."""
    narrow = sp[sp["batch"] < sp["dim"]]
    wide = sp[sp["batch"] > sp["dim"]]
    figs = []
    if not narrow.empty:
        best = narrow.loc[narrow["speedup"].idxmax()]
        figs.append(f"best ×{num(best['speedup'])} ({best['regularizer']}, N={int_text(best['batch'])}, "
                    f"D={int_text(best['dim'])})")
        n256 = narrow[(narrow["batch"] == 256)]
        if not n256.empty:
            figs.append("N=256: " + ", ".join(f"{r['regularizer']} D={int_text(r['dim'])} ×{num(r['speedup'], 2)}"
                                              for _, r in n256[n256["dim"] >= 1024].iterrows()))
    if not wide.empty:
        worst = wide.loc[wide["speedup"].idxmin()]
        figs.append(f"N > D: down to ×{num(worst['speedup'])} (N={int_text(worst['batch'])}, "
                    f"D={int_text(worst['dim'])}, the cross-correlation form is the faster there)")
    v = ("supported" if not narrow.empty and narrow["speedup"].max() > SPEEDUP_MIN else
         "not supported" if not narrow.empty else "inconclusive")
    return v, "; ".join(figs)


def _speedup(df: pd.DataFrame, st: Study) -> list[Verdict]:
    claim = "the Gram form is faster where N < D (its measured speed-up)"
    b = bench_records(df)
    rows = []
    if not b.empty and "algorithm" in b.columns:
        b = b[(b["status"] == "ok") & b["regularizer"].isin(("barlow_twins", "vicreg"))]
        for key, g in b.groupby(["device_name", "threads", "dtype"], dropna=False):
            piv = g.pivot_table(index=["regularizer", "batch", "dim", "views"], columns="algorithm", values="time_s",
                                aggfunc="median")
            if not {"gram", "cross_correlation"} <= set(piv.columns):
                continue
            piv = piv.dropna(subset=["gram", "cross_correlation"])
            if piv.empty:
                continue
            v, figs = _speedup_row((piv["cross_correlation"] / piv["gram"]).rename("speedup").reset_index())
            rows.append(Verdict(st.name, claim, v, figs, RULE_SPEEDUP, "",
                                f"{device_short(key[0])}, {int_text(key[1])} thread(s), {key[2]}"))
    return rows or [Verdict(st.name, claim, "no data", "", RULE_SPEEDUP,
                            "sslbench sweep --config results/sweeps/configs/scaling-dim.toml")]


def verdict(df: pd.DataFrame, st: Study) -> list[Verdict]:
    return [check_verdict(df, st, "values", "the Gram form gives the same loss values and gradients as the "
                          "cross-correlation form", RULE_VALUES, VALUES_NEEDS, _judge_values),
            check_verdict(df, st, "curves", "the Gram form gives the same training curves", RULE_CURVES,
                          CURVES_NEEDS, _judge_curves)] + _speedup(df, st)
