"""Constants that both halves need, kept on the torch-free side: the training side imports them from here, and the
readers of records (analysis, claims, dashboard) use them without importing torch.

A test (``tests/test_layout.py``) checks each against the torch side's own definition where one exists.
"""

#: the width of byol's predictor when ``TrainConfig.predictor_hidden`` is left at its default (records from before
#: 2026-11-28 do not name it)
DEFAULT_PREDICTOR_HIDDEN = 512
#: the regularizers with a learned predictor whose records from before 2026-11-28 do not name its width (it was
#: DEFAULT_PREDICTOR_HIDDEN). A fact about those old records, frozen: records written since carry
#: ``case.predictor_hidden`` for every regularizer whose class sets ``needs_predictor`` (the registry decides,
#: sslbench.training.config.needs_predictor), so a new regularizer never joins this tuple.
UNNAMED_PREDICTOR_REGULARIZERS = ("byol",)

#: ``TrainConfig.warmup_epochs`` left at its default: the report leaves it out of a setting's description
DEFAULT_WARMUP_EPOCHS = 1.0

#: the variance add-on's hyper-parameters when it is off (``sslbench.regularizers.variance.ADD_ON_DEFAULTS``);
#: records leave them out then
VARIANCE_ADDON_DEFAULTS = {"variance_coeff": 0.0, "variance_eps": 1e-4}

#: the record kind of the claims' exact checks: written by ``sslbench sweep --study`` (:mod:`sslbench.execution.studies`),
#: read by the claims' rules (:mod:`sslbench.analysis.claims`)
CHECK_KIND = "claim_check"

#: the peak learning rate when a training config leaves it None, per optimizer (``sslbench.training.config`` uses
#: this very dict)
DEFAULT_LR = {"lars": 3.0, "sgd": 0.1, "adamw": 2e-3}
#: the built-in regularizers' exceptions to DEFAULT_LR, per (optimizer, regularizer): a copy of what their classes
#: declare (``default_lr``, read by ``sslbench.training.config.default_lr_for``), so that the claims can tell a run
#: at its method's own default learning rate without importing torch. The test checks the copy against the classes.
BUILTIN_DEFAULT_LR_FOR = {("sgd", "vicreg"): 0.03, ("adamw", "vicreg"): 1e-3,
                          ("sgd", "vicreg_fft"): 0.03, ("adamw", "vicreg_fft"): 1e-3}


def default_lr(optimizer, regularizer):
    """The learning rate a built-in ``regularizer`` trains at under ``optimizer`` when the config leaves it None
    (None for an unknown optimizer)."""
    return BUILTIN_DEFAULT_LR_FOR.get((optimizer, regularizer), DEFAULT_LR.get(optimizer))
