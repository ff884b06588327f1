import pytest


@pytest.fixture
def staff(client, associate):
    """The test client, logged in as an associate of the `store` fixture."""
    client.force_login(associate)
    return client
