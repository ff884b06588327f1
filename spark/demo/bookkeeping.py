"""What every demo builder shares: the tally of rows created and restored (for the command's
summary), and the reason written on the events the seed writes."""

SEED_REASON = "demo data (seed_demo)"


class Counter:
    def __init__(self) -> None:
        self.created: dict[str, int] = {}
        self.updated: dict[str, int] = {}

    def add(self, kind: str, n: int = 1, *, created: bool = True) -> None:
        target = self.created if created else self.updated
        target[kind] = target.get(kind, 0) + n
