import os
import sys

import pytest
import torch

# tests import helpers (references, the distributed harness) from this folder
sys.path.insert(0, os.path.dirname(__file__))

# the results reader's snapshots (sslbench.records.columnar) go to a folder of this run, not the user's ~/.cache
if "SSLBENCH_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["SSLBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="sslbench-test-snapshots-")


def pytest_collection_modifyitems(config, items):
    for item in items:
        # a test that spawns torch.distributed processes is slow whether or not it says so, so that
        # `pytest -m "not slow"` never starts a process group
        if "distributed" in item.keywords and "slow" not in item.keywords:
            item.add_marker(pytest.mark.slow)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
