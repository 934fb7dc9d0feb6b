"""Write docs/api.md, the API reference, from the package's docstrings, signatures and stubs.

    python scripts/gen_api_docs.py [--check] [--out FILE]

Covers everything in ``avatarkit.__all__`` (grouped by lifecycle stage in ``TOP_LEVEL``) and the
names of the modules in ``MODULES``. Signatures come from ``inspect`` with the annotations as
written; the C++ extension's come from its committed stubs (``python/avatarkit/_core/*.pyi``),
protobuf messages are shown as field tables read from their descriptors and the ``.proto``'s
comments, and ``#:`` comments document attributes and constants. Docstrings are Google style with
reST roles; they are turned into Markdown. ``--check`` writes nothing and exits 1 when docs/api.md
is stale; ``--out`` writes elsewhere (the tests compare that with docs/api.md).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import enum
import functools
import importlib
import inspect
import pathlib
import re
import sys
import typing
from collections.abc import Iterator
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "api.md"
PACKAGE = REPO / "python" / "avatarkit"

#: ``avatarkit.__all__`` in the order of the lifecycle. Every public name must be in one group.
TOP_LEVEL: list[tuple[str, list[str]]] = [
    (
        "1. Initialize",
        [
            "AvatarSDK",
            "Configuration",
            "Environment",
            "AudioFormat",
            "AudioOutputMode",
            "DrivingServiceMode",
            "LogLevel",
        ],
    ),
    ("2. Load", ["AvatarManager", "Avatar", "LoadProgress", "LoadState"]),
    ("3. Render", ["AvatarView", "HeadlessSurface", "WindowSurface", "Camera", "VideoFrame"]),
    (
        "4. Connect and speak",
        ["AvatarController", "AVFrame", "ConnectionState", "ConversationState", "StateReason", "ControllerEvent"],
    ),
    ("Errors", ["AvatarError", "AvatarErrorCode", "CodecError"]),
]

#: Modules documented besides the top-level package, and which of their names (None: ``__all__``).
MODULES: list[tuple[str, list[str] | None]] = [
    ("avatarkit.sdk", ["SAMPLE_RATES", "ENVIRONMENTS", "require_initialized"]),
    ("avatarkit.console", None),
    ("avatarkit.view", ["ANTIALIAS_MODES"]),
    ("avatarkit.controller", ["new_conversation_id"]),
    ("avatarkit.transport", None),
    ("avatarkit.playback", None),
    ("avatarkit.mixer", None),
    ("avatarkit.emotions", None),
    ("avatarkit.events", ["EventHub"]),
    ("avatarkit.audio", None),
    ("avatarkit.media", ["DEMO_SPEECH", "decode_audio", "VideoFormat", "VideoWriter"]),
    ("avatarkit.video", ["local_motion", "render_video", "RenderReport"]),
    ("avatarkit.engine", None),
    ("avatarkit.codec", None),
    ("avatarkit.animation", ["BLEND_IN_FRAMES", "BLEND_OUT_FRAMES"]),
    ("avatarkit.retarget", ["flame_to_canonical", "JAW_FULL_OPEN", "EYE_FULL_TURN"]),
    ("avatarkit.rig", ["AvatarRig", "JOINT_NAMES", "NECK_SHARE", "JAW_OPEN_ANGLE", "EYE_YAW", "EYE_PITCH"]),
    ("avatarkit.assets.gltf", ["load_gltf", "GltfModel", "VRM_VISEME_ALIASES", "SUPPORTED_EXTENSIONS"]),
    ("avatarkit.assets.bundle", ["parse_manifest", "write_manifest", "validate_avatar_id"]),
    ("avatarkit.server.service", ["start_service", "create_service_app", "add_driving_service"]),
    ("avatarkit.server.config", ["ServiceConfig", "AppConfig", "Limits", "load_config", "ConfigError"]),
    ("avatarkit.protocol", None),
    ("avatarkit.protocol.codes", None),
    ("avatarkit.integrations.livekit", None),
    ("avatarkit.integrations.pipecat", None),
]

_SECTION = re.compile(r"^(Args|Arguments|Attributes|Raises|Returns|Yields|Example|Examples|Note|Notes):\s*$")
_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|data|mod|exc|obj|const):`(~?)([^`<]+?)`")
_PROTO_TYPES = {
    1: "double",
    2: "float",
    3: "int64",
    4: "uint64",
    5: "int32",
    8: "bool",
    9: "string",
    12: "bytes",
    13: "uint32",
}


# -- docstrings to Markdown -----------------------------------------------------------------------


def _inline(text: str) -> str:
    """reST inline markup to Markdown: roles and double backquotes to code."""

    def role(match: re.Match[str]) -> str:
        target = match.group(2).strip()
        return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"

    text = re.sub(r"`([^`<]+?) <([^>`]+)>`_", r"[\1](\2)", text)
    return _ROLE.sub(role, text).replace("``", "`")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _section(name: str, lines: list[str]) -> list[str]:
    """One Google-style section (the lines under its header) as Markdown."""
    body = [line for line in lines]
    while body and not body[-1].strip():
        body.pop()
    if name.startswith("Example"):
        code = [line[_indent(body[0]) :] if line.strip() else "" for line in body] if body else []
        return ["**Example:**", "", "```python", *code, "```", ""]
    if name in ("Returns", "Yields", "Note", "Notes"):
        return [f"**{name}:** " + _inline(" ".join(line.strip() for line in body)), ""]
    base = min((_indent(line) for line in body if line.strip()), default=0)
    items: list[str] = []
    for line in body:
        if not line.strip():
            continue
        if _indent(line) == base:
            head, sep, rest = line.strip().partition(":")
            if sep and re.fullmatch(r"[\w.*]+(?: \([^)]*\))?", head):
                items.append(f"- `{head}`:" + (" " + rest.strip() if rest.strip() else ""))
                continue
        if items:
            items[-1] += " " + line.strip()
        else:
            items.append("- " + line.strip())
    return [f"**{'Args' if name == 'Arguments' else name}:**", "", *(_inline(i) for i in items), ""]


def markdown(doc: str) -> str:
    """A docstring (already dedented) as Markdown."""
    lines = doc.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        match = _SECTION.match(line)
        if match:
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > 0):
                j += 1
            out += _section(match.group(1), lines[i + 1 : j])
            i = j
            continue
        if line.lstrip().startswith(">>>"):
            j = i
            while j < len(lines) and lines[j].strip():
                j += 1
            out += ["```python", *(x.strip() for x in lines[i:j]), "```"]
            i = j
            continue
        if _indent(line) >= 4 and (not out or not out[-1].strip()):
            j = i
            while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) >= 4):
                j += 1
            block = lines[i:j]
            while block and not block[-1].strip():
                block.pop()
            out += ["```", *(x[4:] for x in block), "```", ""]
            i = j
            continue
        if line.endswith("::") and i + 1 < len(lines) and not lines[i + 1].strip():
            line = line[:-1]  # reST's literal-block marker; the indented block follows
        out.append(_inline(line))
        i += 1
    return "\n".join(out).strip()


def _doc(obj: Any) -> str:
    return inspect.getdoc(obj) or ""


def _first_paragraph(doc: str) -> str:
    return " ".join(doc.split("\n\n")[0].split())


# -- signatures -----------------------------------------------------------------------------------


class _Raw:
    """Shows a string as it is: annotations written as text, and defaults too long to show."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _annotation(value: Any) -> Any:
    if value is inspect.Parameter.empty:
        return value
    return _Raw(value if isinstance(value, str) else inspect.formatannotation(value))


def _signature(obj: Any, *, drop_first: bool = False) -> str:
    """``(params) -> return`` as written in the source, or ``(...)`` when Python cannot tell."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    params = list(sig.parameters.values())
    if drop_first and params and params[0].name in ("self", "cls"):
        params = params[1:]
    shown = []
    for p in params:
        p = p.replace(annotation=_annotation(p.annotation))
        if p.default is not p.empty:
            text = repr(p.default)
            if len(text) > 60 or " at 0x" in text:
                p = p.replace(default=_Raw("..."))
            elif isinstance(p.default, enum.Enum):
                p = p.replace(default=_Raw(f"{type(p.default).__name__}.{p.default.name}"))
        shown.append(p)
    return str(sig.replace(parameters=shown, return_annotation=_annotation(sig.return_annotation)))


@functools.cache
def _stubs(module: str) -> dict[str, tuple[str, str]]:
    """``qualname -> (signature, docstring)`` from the committed stub of an ``avatarkit._core`` module."""
    path = PACKAGE / "_core" / f"{module.rsplit('.', 1)[-1]}.pyi"
    if not path.exists():
        return {}
    found: dict[str, tuple[str, str]] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                found[prefix + node.name] = ("", ast.get_docstring(node) or "")
                visit(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, ast.FunctionDef):
                sig = f"({_stub_arguments(node.args)})" + (f" -> {ast.unparse(node.returns)}" if node.returns else "")
                key = prefix + node.name
                if key not in found:  # the first of overloads
                    found[key] = (_tidy_stub(sig), ast.get_docstring(node) or "")

    visit(ast.parse(path.read_text()).body, "")
    return found


def _stub_arguments(args: ast.arguments) -> str:
    """A stub's parameters as ``inspect`` would print them (``name: type = default``), without self."""

    def one(arg: ast.arg, default: ast.expr | None) -> str:
        text = arg.arg + (f": {ast.unparse(arg.annotation)}" if arg.annotation else "")
        if default is not None:
            text += (" = " if arg.annotation else "=") + ast.unparse(default)
        return text

    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    parts = [one(a, d) for a, d in zip(positional, defaults, strict=True)]
    if args.posonlyargs:
        parts.insert(len(args.posonlyargs), "/")
    if positional and positional[0].arg in ("self", "cls"):
        parts = parts[1:]
    if args.vararg:
        parts.append("*" + args.vararg.arg)
    elif args.kwonlyargs:
        parts.append("*")
    parts += [one(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    if args.kwarg:
        parts.append("**" + args.kwarg.arg)
    return ", ".join(p for p in parts if p != "/" or len(parts) > 1)


def _tidy_stub(sig: str) -> str:
    for long, short in (
        ("typing.SupportsInt | typing.SupportsIndex", "int"),
        ("typing.SupportsFloat | typing.SupportsIndex", "float"),
        ("numpy.typing.NDArray", "NDArray"),
        ("numpy.typing.ArrayLike", "ArrayLike"),
        ("typing_extensions.Buffer", "Buffer"),
        ("collections.abc.", ""),
        ("numpy.", "np."),
        ("typing.", ""),
    ):
        sig = sig.replace(long, short)
    return re.sub(r"Annotated\[ArrayLike, (np\.\w+)\]", r"ArrayLike[\1]", sig)


def _core_entry(obj: Any, member: str | None = None) -> tuple[str, str] | None:
    module = getattr(obj, "__module__", "") or ""
    if not module.startswith("avatarkit._core"):
        return None
    key = (obj.__qualname__ if inspect.isclass(obj) else obj.__name__) + (f".{member}" if member else "")
    return _stubs(module).get(key)


# -- attribute docs from ``#:`` comments ----------------------------------------------------------


def _comment_docs(source: str, *, top_level_only: bool) -> dict[str, str]:
    docs: dict[str, str] = {}
    pending: list[str] = []
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        match = re.match(r"(?:self\.)?([A-Za-z_]\w*)\s*(?::[^=]+)?=", stripped)
        if pending and match and (not top_level_only or _indent(line) == 0):
            docs.setdefault(match.group(1), " ".join(pending))
            if top_level_only:
                continue  # one comment above several constants documents each of them
        pending = []
    return docs


def _attribute_docs(cls: type) -> dict[str, str]:
    try:
        return _comment_docs(inspect.getsource(cls), top_level_only=False)
    except (OSError, TypeError):
        return {}


# -- protobuf -------------------------------------------------------------------------------------


@functools.cache
def _proto_comments() -> dict[str, str]:
    """``Message`` and ``Message.field`` comments of the .proto (the line before, or at the end)."""
    text = (PACKAGE / "protocol" / "driveningress_v2.proto").read_text()
    docs: dict[str, str] = {}
    pending: list[str] = []
    scope: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("//"):
            pending.append(stripped[2:].strip())
            continue
        opening = re.match(r"(message|enum)\s+(\w+)\s*\{", stripped)
        if opening:
            if pending and not scope:
                docs[opening.group(2)] = " ".join(pending)
            scope.append(opening.group(2))
        elif stripped.startswith("}") and scope:
            scope.pop()
        else:
            field = re.match(r"(?:[\w.<>, ]+?\s)?(\w+)\s*=\s*\d+;\s*(?://\s*(.*))?$", stripped)
            if field and scope and field.group(2):
                docs[f"{scope[-1]}.{field.group(1)}"] = field.group(2)
        pending = []
    return docs


def _is_proto_message(obj: Any) -> bool:
    from google.protobuf.message import Message

    return inspect.isclass(obj) and issubclass(obj, Message)


def _is_proto_enum(obj: Any) -> bool:
    from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

    return isinstance(obj, EnumTypeWrapper)


def _proto_message(name: str, cls: Any, level: str) -> list[str]:
    comments = _proto_comments()
    short = cls.DESCRIPTOR.name
    lines = [f"{level} `{name}`", ""]
    lines += [
        f"Protobuf message `{cls.DESCRIPTOR.full_name}`." + (" " + comments[short] if short in comments else ""),
        "",
    ]
    rows = []
    for field in cls.DESCRIPTOR.fields:
        if field.message_type is not None:
            kind = field.message_type.name
            if field.message_type.GetOptions().map_entry:
                key, value = field.message_type.fields
                kind = f"map<{_PROTO_TYPES.get(key.type, '?')}, {_PROTO_TYPES.get(value.type, '?')}>"
        elif field.enum_type is not None:
            kind = field.enum_type.name
        else:
            kind = _PROTO_TYPES.get(field.type, str(field.type))
        repeated = field.is_repeated and not kind.startswith("map<")
        notes = []
        if field.containing_oneof is not None:
            notes.append(f"oneof `{field.containing_oneof.name}`")
        if f"{short}.{field.name}" in comments:
            notes.append(comments[f"{short}.{field.name}"])
        shown = f"`{'repeated ' if repeated else ''}{kind}`"
        rows.append((str(field.number), f"`{field.name}`", shown, "; ".join(notes)))
    return [*lines, *_table(["#", "field", "type", "notes"], rows), ""]


def _table(header: list[str], rows: list[tuple[str, ...]]) -> list[str]:
    """A Markdown table; the last column is left out when no row has anything in it."""
    if not any(row[-1] for row in rows):
        header, rows = header[:-1], [row[:-1] for row in rows]
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _proto_enum(name: str, wrapper: Any, level: str) -> list[str]:
    comments = _proto_comments()
    lines = [f"{level} `{name}`", "", f"Protobuf enum `{wrapper.DESCRIPTOR.full_name}`.", ""]
    rows = [
        (str(number), f"`{member}`", comments.get(f"{wrapper.DESCRIPTOR.name}.{member}", ""))
        for member, number in wrapper.items()
    ]
    return [*lines, *_table(["value", "name", "notes"], rows), ""]


# -- classes, functions, constants ----------------------------------------------------------------


@dataclasses.dataclass
class Documented:
    """One thing the reference documents: for the docstring test."""

    qualname: str
    obj: Any
    doc: str


#: Everything rendered, filled by :func:`render`.
DOCUMENTED: list[Documented] = []


def _record(qualname: str, obj: Any, doc: str) -> None:
    DOCUMENTED.append(Documented(qualname, obj, doc))


def _wrapped(value: Any) -> Any:
    """The function behind a decorator object (``AvatarManager``'s ``@_shared``), or None."""
    inner = getattr(value, "__wrapped__", None)
    return inner if inspect.isfunction(inner) and not inspect.isfunction(value) else None


def _members(cls: type) -> Iterator[tuple[str, str, Any]]:
    """``(name, kind, object)`` for the public members, in source order; class properties first."""
    meta = type(cls)
    if meta.__module__.startswith("avatarkit"):
        for name, value in vars(meta).items():
            if isinstance(value, property) and not name.startswith("_"):
                yield name, "class property", value
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, property):
            yield name, "property", value
        elif isinstance(value, classmethod):
            yield name, "classmethod", value.__func__
        elif isinstance(value, staticmethod):
            yield name, "staticmethod", value.__func__
        elif inspect.isfunction(value) or (inspect.isroutine(value) and callable(value)):
            yield name, "method", value
        elif _wrapped(value) is not None:
            yield name, "shared", value


def _member(owner: str, cls: type, name: str, kind: str, value: Any, level: str) -> list[str]:
    qual = f"{owner}.{name}"
    stub = _core_entry(cls, name)
    if kind in ("property", "class property"):
        doc = _doc(value) if stub is None else (stub[1] or _doc(value))
        if stub is None and doc.startswith(f"{name}(self"):
            doc = ""
        _record(qual, value, doc)
        settable = getattr(value, "fset", None) is not None
        what = ("settable " if settable else "read-only ") + kind
        annotation = ""
        fget = getattr(value, "fget", None)
        if stub is not None:
            annotation = stub[0].rpartition(" -> ")[2]
        elif inspect.isfunction(fget):
            returned = inspect.signature(fget).return_annotation
            annotation = "" if returned is inspect.Signature.empty else str(_annotation(returned))
        head = f"- **`{name}`**" + (f": `{annotation}`" if annotation else "") + f" ({what})"
        return [head + (f". {_first_paragraph(markdown(doc))}" if doc else ""), ""]
    function = _wrapped(value) or value
    if stub is not None:
        sig, doc = stub[0], stub[1] or _doc(value)
    else:
        sig, doc = _signature(function, drop_first=kind not in ("staticmethod", "shared")), _doc(function)
        if kind == "shared":
            sig = _signature(function, drop_first=True)
    _record(qual, function, doc)
    prefix = "async " if inspect.iscoroutinefunction(function) else ""
    if kind in ("classmethod", "staticmethod"):
        prefix += kind + " "
    suffix = "  # async for" if inspect.isasyncgenfunction(function) else ""
    lines = [f"{level} `{qual}`", "", "```python", f"{prefix}{qual}{sig}{suffix}", "```", ""]
    if kind == "shared":
        lines += [f"Also callable on the class: `{owner}.{name}(...)` runs on `{owner}.shared`.", ""]
    return [*lines, markdown(doc) if doc else "", ""]


def _enum(name: str, cls: Any, level: str) -> list[str]:
    _record(name, cls, _doc(cls))
    doc = _doc(cls)
    lines = [f"{level} `{name}`", "", markdown(doc.split("\n\nMembers:")[0]) if doc else "", ""]
    comments = _attribute_docs(cls) if issubclass(cls, enum.Enum) else {}
    explained = any(member in comments for member in cls.__members__)
    lines += ["| member | value |" + (" meaning |" if explained else ""), "|---|---|" + ("---|" if explained else "")]
    for member, value in cls.__members__.items():
        raw = value.value if isinstance(value, enum.Enum) else int(value)
        meaning = f" {_inline(comments.get(member, ''))} |" if explained else ""
        lines.append(f"| `{member}` | `{raw!r}` |{meaning}")
    lines.append("")
    for prop_name, kind, value in _members(cls):
        if kind == "property" and prop_name not in ("name", "value"):
            lines += _member(name, cls, prop_name, kind, value, level + "#")[:1]
    return [*lines, ""]


def _class(name: str, cls: type, level: str) -> list[str]:
    if _is_proto_message(cls):
        return _proto_message(name, cls, level)
    if issubclass(cls, enum.Enum) or hasattr(cls, "__members__"):
        return _enum(name, cls, level)
    stub = _core_entry(cls)
    doc = stub[1] if stub is not None and stub[1] else _doc(cls)
    _record(name, cls, doc)
    init = _core_entry(cls, "__init__")
    # From the extension: its stub's constructor, or none (such objects are made by other calls).
    stub_sig = init[0].rpartition(" -> ")[0] if init is not None else ""
    sig = stub_sig if stub is not None else _signature(cls)
    if sig.endswith(" -> None"):
        sig = sig[: -len(" -> None")]
    if issubclass(cls, BaseException):
        bases = ", ".join(b.__name__ for b in cls.__bases__)
        lines = [f"{level} `{name}`", "", "```python", f"class {name}({bases})", "```", ""]
    else:
        lines = [f"{level} `{name}`", "", "```python", f"class {name}{sig}", "```", ""]
    lines += [markdown(doc), ""]
    attributes = {
        attr: text for attr, text in _attribute_docs(cls).items() if not attr.startswith("_") and attr != "shared"
    }
    members = list(_members(cls))
    properties = [m for m in members if m[1] in ("property", "class property")]
    if attributes or properties or "shared" in vars(cls):
        lines += ["**Attributes and properties:**", ""]
        if "shared" in vars(cls):
            lines.append(f"- **`shared`** (class attribute): the process-wide `{name}`, made on first use.")
        for attr, text in attributes.items():
            default = getattr(cls, attr, None)
            plain = isinstance(default, int | float | str) and not isinstance(default, bool)
            shown = f" = {default!r}" if plain else ""
            lines.append(f"- **`{attr}`**{shown}: {_inline(text)}")
        for member, kind, value in properties:
            lines += _member(name, cls, member, kind, value, level + "#")[:1]
        lines.append("")
    for member, kind, value in members:
        if (member, kind, value) not in properties:
            lines += _member(name, cls, member, kind, value, level + "#")
    return lines


def _function(name: str, obj: Any, level: str) -> list[str]:
    stub = _core_entry(obj)
    sig, doc = (stub[0], stub[1] or _doc(obj)) if stub is not None else (_signature(obj), _doc(obj))
    _record(name, obj, doc)
    prefix = "async " if inspect.iscoroutinefunction(obj) else ""
    return [f"{level} `{name}`", "", "```python", f"{prefix}{name}{sig}", "```", "", markdown(doc), ""]


@functools.cache
def _assignments(module: str) -> dict[str, str]:
    """The source text of each module-level assignment's value."""
    try:
        source = inspect.getsource(importlib.import_module(module))
    except (OSError, TypeError):
        return {}
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            target, value = node.target.id, node.value
        else:
            continue
        found[target] = ast.get_source_segment(source, value) or ""
    return found


def _value_text(value: Any) -> str:
    if isinstance(value, set | frozenset):
        return "{" + ", ".join(repr(v) for v in sorted(value)) + "}"
    if isinstance(value, tuple | list) and len(repr(value)) > 100 and all(isinstance(v, str) for v in value):
        return f"({value[0]!r}, {value[1]!r}, ..., {value[-1]!r})  # {len(value)} names"
    text = repr(value)
    return text if len(text) <= 100 else text[:96] + " ..."


def _constant(name: str, value: Any, comment: str, level: str) -> list[str]:
    module, _, short = name.rpartition(".")
    source = _assignments(module).get(short, "") if module else ""
    if typing.get_origin(value) is not None:
        text = str(value).replace("typing.", "")
    elif source and len(source) <= 400 and not re.fullmatch(r"[\d.e+-]+|'[^']*'|\"[^\"]*\"", source):
        text = source
    else:
        text = _value_text(value)
    if source and text == source and isinstance(value, int | float | str | tuple | pathlib.Path):
        shown = _value_text(value) if not isinstance(value, pathlib.Path) else ""
        try:
            ast.literal_eval(source)
            shown = ""  # the source is the value
        except (ValueError, SyntaxError):
            pass
        if shown and "\n" not in source and len(source) + len(shown) < 100:
            text += f"  # {shown}"
    return [f"{level} `{name}`", "", "```python", f"{short or name} = {text}", "```", "", _inline(comment), ""]


def _entry(qualname: str, obj: Any, level: str, comment: str = "") -> list[str]:
    if _is_proto_enum(obj):
        return _proto_enum(qualname, obj, level)
    if inspect.isclass(obj):
        return _class(qualname, obj, level)
    if callable(obj) and typing.get_origin(obj) is None:
        return _function(qualname, obj, level)
    return _constant(qualname, obj, comment, level)


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9 _-]", "", title.lower()).replace(" ", "-")


def render() -> str:
    """The whole reference, as Markdown."""
    import avatarkit

    DOCUMENTED.clear()
    grouped = [name for _, names in TOP_LEVEL for name in names]
    public = sorted(
        n for n in avatarkit.__all__ if not n.startswith("_") and not inspect.ismodule(getattr(avatarkit, n))
    )
    if sorted(grouped) != public:
        raise SystemExit(f"TOP_LEVEL and avatarkit.__all__ differ: {sorted(set(grouped) ^ set(public))}")
    out = [
        "# API reference",
        "",
        "Generated from the docstrings by `python scripts/gen_api_docs.py`; do not edit by hand. For the",
        "ideas behind the names (lifecycle, modes, states, sync) read [concepts.md](concepts.md).",
        "",
        "- [`avatarkit`](#avatarkit): " + ", ".join(f"[{title}](#{_anchor(title)})" for title, _ in TOP_LEVEL),
        *(f"- [`{module}`](#{_anchor(module)})" for module, _ in MODULES),
        "",
        "## avatarkit",
        "",
        markdown(_doc(avatarkit)),
        "",
    ]
    for title, names in TOP_LEVEL:
        out += [f"### {title}", ""]
        for name in names:
            out += _entry(name, getattr(avatarkit, name), "####")
    for module_name, selection in MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:  # an integration whose framework is not installed
            raise SystemExit(
                f"{module_name} needs {err.name}: install the extras (pip install '.[livekit,pipecat]')"
            ) from err
        names = selection if selection is not None else sorted(n for n in module.__all__ if not n.startswith("_"))
        try:
            comments = _comment_docs(inspect.getsource(module), top_level_only=True)
        except (OSError, TypeError):
            comments = {}
        out += [f"## {module_name}", "", markdown(_doc(module)), ""]
        for name in names:
            obj = getattr(module, name)
            if name in avatarkit.__all__ and obj is getattr(avatarkit, name):
                out += [f"`{module_name}.{name}` is [`avatarkit.{name}`](#{name.lower()}).", ""]
                continue
            out += _entry(f"{module_name}.{name}", obj, "###", comments.get(name, ""))
    text = "\n".join(out)
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when docs/api.md is stale")
    parser.add_argument("--out", type=pathlib.Path, help="write here instead of docs/api.md")
    args = parser.parse_args()
    text = render()
    if args.out is not None:
        args.out.write_text(text)
        return 0
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print("docs/api.md is stale: run python scripts/gen_api_docs.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(REPO)} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
