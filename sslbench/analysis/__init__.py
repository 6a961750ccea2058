"""Analysis of the results in pandas, torch-free: one tidy table of every record, scaling exponents, crossovers,
accuracy and regression tables, and the data behind each dashboard page.

* :mod:`.load`: :func:`load_results` (every record under a folder as one table, with the derived columns of
  :data:`DERIVED_COLUMNS`), :func:`results_stamp`, :func:`load_run_logs` (training runs' per-step logs).
* :mod:`.scaling`: :func:`fit_power_law`, :func:`fit_scaling`, :func:`scaling_table`; :func:`crossover`,
  :func:`crossovers`, :func:`crossover_table`.
* :mod:`.accuracy`: :func:`run_variants`, :func:`accuracy_table`.
* :mod:`.regressions`: :func:`regressions` (asv, each benchmark against the previous commit).
* :mod:`.tables`: :func:`summary` (the tables of ``sslbench analyze``) and :func:`format_table`.
* :mod:`.views`: the dashboard pages' data (filter choices, defaults, series, crossing pairs), Streamlit-free.
* :mod:`.report` and the claims: the seed papers' claims and their verdicts.

Imports pandas and numpy but neither torch nor any sslbench module that does (``tests/test_layout.py``).
"""

from sslbench.analysis.accuracy import ACCURACY_KEYS, ACCURACY_METRICS, VARIANT_KEYS, accuracy_table, run_variants
from sslbench.analysis.common import column, fmt_number
from sslbench.analysis.load import (
    DERIVED_COLUMNS,
    HOW_TO_PRODUCE_RESULTS,
    SCALING_KINDS,
    X_COLUMNS,
    Y_COLUMNS,
    find_run_logs,
    load_results,
    load_run_logs,
    results_stamp,
)
from sslbench.analysis.regressions import regressions
from sslbench.analysis.scaling import (
    OTHER_AXES,
    Crossover,
    PowerLaw,
    crossover,
    crossover_table,
    crossovers,
    fit_power_law,
    fit_scaling,
    ok_points,
    scaling_table,
)
from sslbench.analysis.tables import SUMMARY_COLUMNS, SUMMARY_TABLES, format_table, inventory, summary

__all__ = [
    "DERIVED_COLUMNS",
    "SCALING_KINDS",
    "Y_COLUMNS",
    "X_COLUMNS",
    "OTHER_AXES",
    "HOW_TO_PRODUCE_RESULTS",
    "ACCURACY_KEYS",
    "ACCURACY_METRICS",
    "VARIANT_KEYS",
    "SUMMARY_TABLES",
    "SUMMARY_COLUMNS",
    "column",
    "fmt_number",
    "load_results",
    "find_run_logs",
    "load_run_logs",
    "results_stamp",
    "PowerLaw",
    "fit_power_law",
    "ok_points",
    "fit_scaling",
    "scaling_table",
    "Crossover",
    "crossover",
    "crossovers",
    "crossover_table",
    "run_variants",
    "accuracy_table",
    "regressions",
    "inventory",
    "summary",
    "format_table",
]
