"""Hub method descriptors: what the dispatcher knows about each callable method.

Built once per hub class from methods marked with `@hub_method`. Wire names default to the
Python name in PascalCase and match case-insensitively (docs/protocol.md §9.1). Parameters are
bound with pydantic TypeAdapters; a parameter annotated `AsyncIterator[T]` (or
`AsyncIterable[T]`) is an upload stream fed by the client; an async generator method is a
server-to-client stream.
"""

from __future__ import annotations

import collections.abc
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from pydantic import TypeAdapter, ValidationError

from hero.realtime.runtime.errors import BindingError

_MARK = "__hero_hub_method__"
F = TypeVar("F", bound=Callable[..., Any])

_STREAM_ORIGINS = (collections.abc.AsyncIterator, collections.abc.AsyncIterable)


def pascal_case(name: str) -> str:
    """`send_message` -> `SendMessage`; names already in PascalCase are kept."""
    if "_" not in name:
        return name[:1].upper() + name[1:]
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


@overload
def hub_method(func: F, *, name: str | None = None) -> F: ...


@overload
def hub_method(func: None = None, *, name: str | None = None) -> Callable[[F], F]: ...


def hub_method(func: F | None = None, *, name: str | None = None) -> F | Callable[[F], F]:
    """Mark a Hub method as callable by clients, optionally under another wire name."""

    def mark(f: F) -> F:
        setattr(f, _MARK, name or pascal_case(f.__name__))
        return f

    if func is not None:
        return mark(func)
    return mark


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    adapter: TypeAdapter[Any] | None
    is_stream: bool


@dataclass(frozen=True, slots=True)
class HubMethod:
    """One client-callable method. `function` is the plain function (self first)."""

    name: str
    function: Callable[..., Any]
    parameters: tuple[Parameter, ...]
    is_streaming: bool
    argument_count: int = field(init=False)
    """Parameters the invocation's `arguments` fill (counted once, used per invocation)."""
    stream_count: int = field(init=False)
    """Parameters fed by upload streams (`streamIds`)."""
    _plain: bool = field(init=False)
    """No stream parameter and no argument to validate: `bind` returns the arguments."""

    def __post_init__(self) -> None:
        streams = sum(1 for p in self.parameters if p.is_stream)
        object.__setattr__(self, "stream_count", streams)
        object.__setattr__(self, "argument_count", len(self.parameters) - streams)
        plain = not streams and all(p.adapter is None for p in self.parameters)
        object.__setattr__(self, "_plain", plain)

    def bind(self, arguments: tuple[Any, ...]) -> list[Any]:
        """Validate plain arguments against the non-stream parameters, in order."""
        expected = self.argument_count
        if len(arguments) != expected:
            raise BindingError(
                f"Invocation provides {len(arguments)} argument(s) but target expects {expected}."
            )
        if self._plain:
            return list(arguments)
        bound: list[Any] = []
        values = iter(arguments)
        for param in self.parameters:
            if param.is_stream:
                continue
            value = next(values)
            if param.adapter is not None:
                try:
                    value = param.adapter.validate_python(value)
                except ValidationError as exc:
                    first = exc.errors()[0]["msg"] if exc.errors() else str(exc)
                    raise BindingError(f"Error binding argument '{param.name}': {first}") from None
            bound.append(value)
        return bound


def _adapter(annotation: Any) -> TypeAdapter[Any] | None:
    if annotation is inspect.Parameter.empty or annotation is Any:
        return None
    return TypeAdapter(annotation)


def _stream_item_type(annotation: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(annotation)
    if origin in _STREAM_ORIGINS:
        args = typing.get_args(annotation)
        return True, args[0] if args else Any
    return False, annotation


def describe_method(function: Callable[..., Any], wire_name: str) -> HubMethod:
    hints = typing.get_type_hints(function)
    signature = inspect.signature(function)
    params: list[Parameter] = []
    for index, (pname, param) in enumerate(signature.parameters.items()):
        if index == 0:
            continue  # self
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise TypeError(f"hub method {wire_name}: *args/**kwargs are not supported")
        annotation = hints.get(pname, inspect.Parameter.empty)
        is_stream, item_type = _stream_item_type(annotation)
        params.append(
            Parameter(
                name=pname,
                adapter=_adapter(item_type) if is_stream else _adapter(annotation),
                is_stream=is_stream,
            )
        )
    returns = hints.get("return")
    streaming = (
        inspect.isasyncgenfunction(function) or typing.get_origin(returns) in _STREAM_ORIGINS
    )
    if not streaming and not inspect.iscoroutinefunction(function):
        raise TypeError(f"hub method {wire_name} must be `async def` (or an async generator)")
    return HubMethod(
        name=wire_name, function=function, parameters=tuple(params), is_streaming=streaming
    )


def describe_hub(hub_type: type) -> dict[str, HubMethod]:
    """Every `@hub_method` of `hub_type` (and its bases), keyed by lower-cased wire name."""
    methods: dict[str, HubMethod] = {}
    for klass in reversed(hub_type.__mro__):
        for attr, value in vars(klass).items():
            wire = getattr(value, _MARK, None)
            if wire is None:
                continue
            method = describe_method(value, wire)
            key = wire.lower()
            existing = methods.get(key)
            if existing is not None and existing.function.__name__ != attr:
                raise TypeError(f"duplicate hub method name {wire!r} on {hub_type.__name__}")
            methods[key] = method
    return methods
