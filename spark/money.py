"""Money is integer cents (USD) everywhere. This is the one place that formats it."""


def format_cents(cents: int) -> str:
    """12345 -> "$123.45"; -5 -> "-$0.05". Integers only: floats are a bug upstream."""
    if not isinstance(cents, int) or isinstance(cents, bool):
        raise TypeError(f"money must be integer cents, got {type(cents).__name__}")
    sign = "-" if cents < 0 else ""
    dollars, rest = divmod(abs(cents), 100)
    return f"{sign}${dollars:,}.{rest:02d}"
