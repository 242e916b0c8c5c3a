from djarchive_common.layout import natural_key


def test_natural_order():
    assert sorted(["10", "2", "1"], key=natural_key) == ["1", "2", "10"]
