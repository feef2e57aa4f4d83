"""The service uses Starlette, uvicorn, Strawberry, redis-py and discord.py through their public
interfaces only: no module reads an underscore-named attribute of their objects, so that a
release changing a private detail cannot break it silently.

Two ways to read one: on another object (``websocket._send``), which no module of ``app/`` does
for any object but its own (ruff's SLF001 says the same); and on ``self`` in a subclass of a
library class, where ``self._schema`` would be the library's own attribute.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

from graphql import GraphQLError
from starlette.websockets import WebSocket
from strawberry.extensions import MaskErrors

import app

LIBRARIES = ("starlette", "uvicorn", "strawberry", "redis", "discord")
APP = Path(app.__file__).parent
# Public despite the underscore: namedtuple's documented method (urllib's SplitResult), and
# argparse's type of add_subparsers() (the standard library names no public alias).
PUBLIC = {"_replace", "_SubParsersAction"}


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def sources() -> list[Path]:
    return sorted(APP.rglob("*.py"))


def private_reads(source: str) -> list[tuple[int, str]]:
    """(line, name) of each underscore-named attribute read on an object other than self or cls."""
    return [
        (node.lineno, node.attr)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute)
        and private(node.attr)
        and node.attr not in PUBLIC
        and not (isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"})
    ]


def test_no_module_reads_a_private_attribute_of_another_object() -> None:
    found = [
        f"{path.relative_to(APP.parent)}:{line}: .{name}"
        for path in sources()
        for line, name in private_reads(path.read_text())
    ]
    assert not found, "\n".join(found)


def library_privates(cls: type) -> set[str]:
    """Underscore-named attributes a library class or its library bases define or set."""
    names: set[str] = set()
    for base in cls.__mro__:
        if not base.__module__.startswith(LIBRARIES):
            continue
        names |= {name for name in vars(base) if private(name)}
        try:
            source = inspect.getsource(base)
        except (OSError, TypeError):
            continue  # a class built in C: what it defines is in vars() above
        names |= {name for name in re.findall(r"self\.(_\w+)", source) if private(name)}
    return names


def app_classes() -> list[type]:
    # Not the entry point (it runs the CLI) nor Alembic's scripts (they run inside Alembic).
    names = [
        info.name
        for info in pkgutil.walk_packages([str(APP)], "app.")
        if not info.name.endswith("__main__") and ".migrations." not in info.name
    ]
    modules = [importlib.import_module(name) for name in names]
    return [
        value
        for module in modules
        for value in vars(module).values()
        if inspect.isclass(value) and value.__module__ == module.__name__
    ]


def touched(cls: type) -> set[str]:
    """The library's private attributes a subclass reads, sets or overrides."""
    source = inspect.getsource(cls)
    used = set(re.findall(r"self\.(_\w+)", source))
    used |= set(re.findall(r"^\s+(?:async )?def (_\w+)", source, re.MULTILINE))
    used |= set(re.findall(r"^\s+(_\w+)\s*[:=]", source, re.MULTILINE))
    return {name for name in used if private(name)} & library_privates(cls)


def test_no_subclass_of_a_library_class_touches_its_private_attributes() -> None:
    subclasses = [
        cls for cls in app_classes() if any(base.__module__.startswith(LIBRARIES) for base in cls.__mro__[1:])
    ]
    # The check looks at the subclasses that exist (the WebSocket handlers, the bot, the schema...).
    assert len(subclasses) >= 10
    found = [
        f"{cls.__module__}.{cls.__qualname__}: {name}" for cls in subclasses for name in sorted(touched(cls))
    ]
    assert not found, "\n".join(found)


class ReadsStarlettesSend(WebSocket):
    def protocol(self) -> object:
        return self._send


class OverridesAPrivateHook(MaskErrors):
    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return errors


def test_the_checks_find_what_they_look_for() -> None:
    assert private_reads("websocket._send\nself.schema._schema\nself._own") == [(1, "_send"), (2, "_schema")]
    assert touched(ReadsStarlettesSend) == {"_send"}
    assert touched(OverridesAPrivateHook) == {"_process_errors"}
