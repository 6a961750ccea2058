"""sslbench's benchmark scripts (side by side, throughput, GPU checks, projections; each runs as
``python benchmarks/NAME.py``). The asv suite, the benchmark classes that asv discovers, is the folder
``benchmarks/asv_suite/`` (``benchmark_dir`` in ``asv.conf.json``, see ``docs/measurement.md``).

When ``sslbench`` cannot be imported at all (a bare checkout), the checkout that holds this folder is put on
``sys.path``; it is never put in front of an installed sslbench.
"""

import os
import sys

try:
    import sslbench  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
