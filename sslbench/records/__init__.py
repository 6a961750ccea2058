"""Records, torch-free: the schema (:mod:`.schema`), the JSON-lines store (:mod:`.store`), the readers of
pytest-benchmark and asv results and the flattening into a table (:mod:`.readers`), constants both halves need
(:mod:`.constants`) and output-path checks (:mod:`.paths`).

Every measurement sslbench makes becomes one record (see :mod:`sslbench.records.schema` for its keys), appended
as one JSON line to a store. Nothing here imports torch or the rest of sslbench: a writer passes its environment
into :func:`make_record`, and the dashboard reads records without torch.
"""

from sslbench.records.readers import read_asv_results, read_pytest_benchmark, to_dataframe
from sslbench.records.schema import (  # noqa: F401
                                     FINAL_STATUSES,
                                     RECORD_KEYS,
                                     SCHEMA_VERSION,
                                     STATUSES,
                                     _plain,
                                     case_id,
                                     clamp_numbers,
                                     make_record,
                                     unusable_reason,
                                     upgrade_record,
)
from sslbench.records.store import append_record, completed_ids, read_records

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "FINAL_STATUSES",
    "RECORD_KEYS",
    "make_record",
    "case_id",
    "append_record",
    "read_records",
    "upgrade_record",
    "unusable_reason",
    "clamp_numbers",
    "completed_ids",
    "read_pytest_benchmark",
    "read_asv_results",
    "to_dataframe",
]
