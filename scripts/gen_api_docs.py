"""Write docs/api.md, the API reference, from the package's docstrings and signatures.

    python scripts/gen_api_docs.py [--check]

Covers everything in ``avatarkit.__all__`` and the public names of the modules listed in
``MODULES``. ``--check`` writes nothing and exits 1 when docs/api.md is stale (the tests run it).
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import importlib
import inspect
import pathlib
import re
import sys
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "api.md"

#: Modules documented besides the top-level package, with a line on what each is for.
MODULES = {
    "avatarkit.audio": "Sound devices: hear the avatar, speak to it through a microphone.",
    "avatarkit.media": "Decoding speech files and writing videos.",
    "avatarkit.video": "Speech to a talking-avatar video, offline (what `avatarkit render` runs).",
    "avatarkit.engine": "The speech-to-animation engine, streaming.",
    "avatarkit.codec": "The AK1 animation stream codec and the FlameAnimation reader.",
    "avatarkit.protocol": "The driveningress v2 messages.",
}


def _doc(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip()


class _Elided:
    """A default value too long to show: its repr is ``...``."""

    def __repr__(self) -> str:
        return "..."


def _signature(obj: Any) -> str:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    params = [
        p.replace(default=_Elided()) if p.default is not p.empty and len(repr(p.default)) > 60 else p
        for p in sig.parameters.values()
    ]
    return re.sub(r" at 0x[0-9a-f]+", "", str(sig.replace(parameters=params)))


def _public_members(cls: type) -> list[tuple[str, Any]]:
    members = []
    for name, value in cls.__dict__.items():
        if name.startswith("_") and name != "__init__":
            continue
        if name == "__init__" and (dataclasses.is_dataclass(cls) or not value.__doc__):
            continue  # the class line shows the signature
        members.append((name, value))
    return members


def _class(name: str, cls: type, level: str) -> list[str]:
    lines = [f"{level} `{name}`", ""]
    if issubclass(cls, enum.Enum):
        lines += [_doc(cls), "", "Members: " + ", ".join(f"`{m.name}` (`{m.value!r}`)" for m in cls), ""]
        return lines
    lines += ["```python", f"class {name}{_signature(cls)}", "```", "", _doc(cls), ""]
    for member, value in _public_members(cls):
        if isinstance(value, property):
            doc = _doc(value)
            lines += [f"- **`{member}`** (property){': ' + doc.splitlines()[0] if doc else ''}"]
        elif isinstance(value, classmethod | staticmethod):
            func = value.__func__
            lines += [f"- **`{member}{_signature(func)}`**: {_first_paragraph(func)}"]
        elif inspect.isfunction(value):
            shown = "__init__" if member == "__init__" else member
            lines += [f"- **`{shown}{_signature(value)}`**: {_first_paragraph(value)}"]
    lines.append("")
    return lines


def _first_paragraph(obj: Any) -> str:
    doc = _doc(obj)
    return " ".join(doc.split("\n\n")[0].split()) if doc else "(undocumented)"


def _entry(qualname: str, obj: Any, level: str) -> list[str]:
    if inspect.isclass(obj):
        return _class(qualname, obj, level)
    if callable(obj):
        return [f"{level} `{qualname}`", "", "```python", f"def {qualname}{_signature(obj)}", "```", "", _doc(obj), ""]
    return []


def _module_names(module: Any) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if getattr(v, "__module__", None) == module.__name__]
    return sorted(n for n in names if not n.startswith("_"))


def render() -> str:
    import avatarkit

    out = [
        "# API reference",
        "",
        "Generated from the docstrings by `python scripts/gen_api_docs.py`; do not edit by hand. For the",
        "ideas behind the names (lifecycle, modes, states, sync) read [concepts.md](concepts.md).",
        "",
        "## `avatarkit`",
        "",
    ]
    for name in sorted(n for n in avatarkit.__all__ if not n.startswith("_")):
        obj = getattr(avatarkit, name)
        if inspect.ismodule(obj):
            continue
        out += _entry(name, obj, "###")
    for module_name, what in MODULES.items():
        module = importlib.import_module(module_name)
        out += [f"## `{module_name}`", "", what, ""]
        for name in _module_names(module):
            obj = getattr(module, name)
            if obj is getattr(avatarkit, name, None) and name in avatarkit.__all__:
                out += [f"- `{name}`: see [`avatarkit.{name}`](#{name.lower()})", ""]
                continue
            out += _entry(f"{module_name}.{name}", obj, "###")
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when docs/api.md is stale")
    args = parser.parse_args()
    text = render()
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
