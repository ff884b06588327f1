"""Django's guard against the ORM running inside an event loop stays on outside the browser
tests: tests/browser/ switches it off only while Playwright's loop runs (see its conftest)."""

import asyncio
import os

import pytest
from django.core.exceptions import SynchronousOnlyOperation

from accounts.models import User


def test_async_unsafe_is_not_allowed_for_the_whole_process():
    assert "DJANGO_ALLOW_ASYNC_UNSAFE" not in os.environ


@pytest.mark.django_db
def test_a_query_inside_an_event_loop_is_refused():
    async def count_users():
        return User.objects.count()

    with pytest.raises(SynchronousOnlyOperation):
        asyncio.run(count_users())
