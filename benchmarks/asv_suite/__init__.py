"""sslbench's asv suite (see ``docs/measurement.md``): benchmark classes only, the folder asv discovers
(``benchmark_dir`` in ``asv.conf.json``). The scripts stay one folder up, in ``benchmarks/``.

asv imports this folder as a package. Across commits (``asv run``) the package under test is the one asv installed
into its environment; against the current environment (``asv run --python=same``) sslbench must be importable:
installed (``make venv`` installs it in editable mode) or on ``PYTHONPATH``. As a convenience for a bare checkout,
when ``sslbench`` cannot be imported at all the checkout that holds this folder is put on ``sys.path``: it is never
put in front of an installed sslbench, which would benchmark the working tree in place of the commit asv built.
"""

import os
import sys

try:
    import sslbench  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
