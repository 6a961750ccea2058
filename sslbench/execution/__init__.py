"""Execution (torch): the environment fingerprint, measurement per device, the child-process runner, bench and sweep."""
