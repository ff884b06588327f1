"""Fixtures shared by this folder's test modules."""

import pytest

from stores.tests.factories import ZoneFactory


@pytest.fixture
def zone(db):
    return ZoneFactory()
