"""sslbench: benchmark and profiling suite for decorrelating self-supervised regularizers."""

__version__ = "0.1.0"
