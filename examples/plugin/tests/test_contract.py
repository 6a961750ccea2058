"""The toy losses against sslbench's regularizer contract, in the plugin's own test suite."""

from sslbench.execution.contract import FAIL, assert_contract, contract_rows


def test_toy_decorrelation_meets_the_contract():
    assert_contract("sslbench_toy.losses:ToyDecorrelation", lambd=0.01)


def test_the_plain_gather_twin_fails_only_the_distributed_row():
    rows = contract_rows("sslbench_toy.losses:PlainGatherDecorrelation")
    failed = [r for r in rows if r.status == FAIL]
    assert [r.property for r in failed] == ["distributed (2 gloo ranks)"]
    assert "1/2 of what DDP needs" in failed[0].why
