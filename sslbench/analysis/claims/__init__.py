"""The seed papers' claims, one module per study with its rules and thresholds (torch-free: pandas and numpy).

Each study module (:mod:`~.fft`, :mod:`~.sfrik`, :mod:`~.views`, :mod:`~.variance`, :mod:`~.isoloss`,
:mod:`~.gram`) exposes ``verdict(df, study) -> list[Verdict]`` on the loaded results
(:func:`sslbench.analysis.load_results`); :mod:`~.common` holds what they share. The registry of the studies, the
command and the rendering are :mod:`sslbench.analysis.report`; what runs the studies (torch) is
:mod:`sslbench.execution.studies`.
"""
