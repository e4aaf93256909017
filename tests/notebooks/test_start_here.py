"""00_start_here at smoke scale: every dataset found, the bigram check recorded (the fixture
asserts that every check holds)."""


def test_start_here(run_notebook):
    records, claims = run_notebook("00_start_here.ipynb")
    assert records["datasets_found"] == records["datasets_total"] == 7
    assert 0 < records["bigram_val_loss"] < 10 and 0 < records["unigram_entropy"] < 10
    assert claims == []
