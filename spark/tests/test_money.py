import pytest

from spark.money import format_cents


@pytest.mark.parametrize(
    ("cents", "text"), [(0, "$0.00"), (5, "$0.05"), (12345, "$123.45"), (-250, "-$2.50"), (123456789, "$1,234,567.89")]
)
def test_format_cents(cents, text):
    assert format_cents(cents) == text


def test_format_cents_refuses_floats():
    with pytest.raises(TypeError):
        format_cents(1.5)  # type: ignore[arg-type]
