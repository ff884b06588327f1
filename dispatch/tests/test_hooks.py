"""The seam between the lower layers and dispatch: every hook has its one handler."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from dispatch import services
from spark import hooks


def test_dispatch_installs_a_handler_for_every_hook():
    named = {name: hook for name, hook in vars(hooks).items() if isinstance(hook, hooks.Hook)}
    assert named, "no hooks found"
    for name, hook in named.items():
        assert hook._handler is not None, f"{name} has no handler"
    assert hooks.batch_withdrawn._handler is services.offers_withdraw


def test_a_hook_takes_one_handler_and_fails_loudly_without_one():
    hook = hooks.Hook("example", "example(x): for this test")
    with pytest.raises(ImproperlyConfigured):
        hook(x=1)
    hook.install(lambda *, x: x + 1)
    assert hook(x=1) == 2
    with pytest.raises(ImproperlyConfigured):
        hook.install(lambda *, x: x)
