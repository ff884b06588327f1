"""Plain helpers shared by the test suites (not fixtures: those live in conftest.py). Never
imported by the application; the production image carries no tests/ folder."""

import threading

from django.db import connection


def run_in_threads(n: int, target) -> list:
    """Run target(i) in n threads released together by a barrier; return what each returned or
    raised. Every thread closes its own database connection. For races on PostgreSQL: the tests
    using it need `django_db(transaction=True)` so the threads see each other's commits."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = target(i)
        except BaseException as exc:  # the test inspects what each thread got
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return results
