"""The seam through which a lower layer sets off a higher one (spark.hooks): every hook has its
one handler once the apps are ready, and a hook without one fails loudly."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from spark import hooks


def test_every_hook_has_a_handler_once_the_apps_are_ready():
    named = {name: hook for name, hook in vars(hooks).items() if isinstance(hook, hooks.Hook)}
    assert named, "no hooks found"
    for name, hook in named.items():
        assert hook._handler is not None, f"{name} has no handler"


def test_a_hook_takes_one_handler_and_fails_loudly_without_one():
    hook = hooks.Hook("example", "example(x): for this test")
    with pytest.raises(ImproperlyConfigured):
        hook(x=1)
    hook.install(lambda *, x: x + 1)
    assert hook(x=1) == 2
    with pytest.raises(ImproperlyConfigured):
        hook.install(lambda *, x: x)
