"""Probes of the machine that training and execution both take: the environment fingerprint of a record
(:mod:`sslbench.probe.environment`), the process's resident memory and the out-of-memory test
(:mod:`sslbench.probe.memory`). It sits below both halves of the torch side and imports nothing else of sslbench,
so the training loop never imports the runner (:mod:`sslbench.execution`) for them."""
