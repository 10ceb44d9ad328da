"""Compatibility fix for bioimageio.spec 0.5.12 with pydantic-core >= 2.4x.

bioimageio.core 0.11 pins bioimageio.spec 0.5.12, whose three "wrap" serializers call
pydantic's handler as ``handler(value, info)``. Recent pydantic-core takes the second
positional argument as an ``index_key`` (int or str) and raises ``TypeError: 'index_key'
is expected to be an integer or a string``, so no model description can be validated,
read or saved. bioimageio.spec 0.5.14 calls ``handler(value)``; this module makes the
three functions of older versions do the same, by wrapping the handler they receive. It
changes nothing when bioimageio.spec is 0.5.14 or newer.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

_PATCHED = False


def _drop_extra_arguments(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Return a handler that ignores the ``info`` passed as its second argument."""

    def call(value: Any, *_ignored: Any) -> Any:
        return handler(value)

    return call


def _wrap_handler_argument(function: types.FunctionType) -> None:
    """Make ``function(value, handler, info)`` receive a handler that takes one argument.

    The function object is changed in place (its code), because pydantic holds on to it.
    """
    if function.__closure__ is not None or function.__code__.co_argcount != 3:
        return
    original = types.FunctionType(
        function.__code__, function.__globals__, function.__name__,
        function.__defaults__, function.__closure__,
    )
    name = f"_nuclei_unet_original_{function.__name__}"
    function.__globals__[name] = original
    function.__globals__["_nuclei_unet_drop_extra_arguments"] = _drop_extra_arguments
    namespace: dict[str, Any] = {}
    exec(  # noqa: S102 - a fixed trampoline, no user input
        f"def trampoline(value, handler, info):\n"
        f"    return {name}(value, _nuclei_unet_drop_extra_arguments(handler), info)\n",
        namespace,
    )
    function.__code__ = namespace["trampoline"].__code__


def apply() -> None:
    """Apply the fix once, when the installed bioimageio.spec needs it."""
    global _PATCHED
    if _PATCHED:
        return
    _PATCHED = True
    import bioimageio.spec
    from packaging.version import Version

    if Version(bioimageio.spec.__version__) >= Version("0.5.14"):
        return
    from bioimageio.spec._internal import io_packaging, validated_string_with_inner_node
    from bioimageio.spec.model import v0_4

    _wrap_handler_argument(io_packaging.package_file_descr_serializer)
    _wrap_handler_argument(v0_4.package_weights)
    _wrap_handler_argument(
        validated_string_with_inner_node.ValidatedStringWithInnerNode._serialize
    )
