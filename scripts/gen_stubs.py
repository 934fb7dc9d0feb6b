"""Regenerate the committed stubs of avatarkit._core from the built extension.

Run after changing the bindings (needs the `dev` group): ``python scripts/gen_stubs.py``. The test
suite checks the stubs against the built module with mypy's stubtest.
"""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
TARGET = ROOT / "python" / "avatarkit" / "_core"


def _polish(path: pathlib.Path) -> None:
    text = path.read_text()
    # Constants: state the element type, not the value.
    text = re.sub(r"^(\w+): tuple = \(.*\)$", r"\1: tuple[str, ...]", text, flags=re.M)
    text = re.sub(r"^__version__: str = .*$", "__version__: str", text, flags=re.M)
    # Dictionaries the bindings build by hand.
    text = text.replace("def stats(self) -> dict:", "def stats(self) -> dict[str, int]:")
    # The extension defines no __all__; the package's public modules do.
    text = re.sub(r"^__all__: list\[str\] = \[.*\]\n", "", text, flags=re.M)
    # Attributes the bindings add to exception instances at raise time.
    text = re.sub(r'(class CodecError\(ValueError\):\n    """.*?"""\n)', r"\1    code: str\n", text, flags=re.S)
    path.write_text(text)


def main() -> int:
    """Generate into a scratch folder, polish, and replace the committed stubs."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pybind11_stubgen",
                "avatarkit._core",
                "-o",
                tmp,
                "--numpy-array-use-type-var",
                "--enum-class-locations",
                "Quant:avatarkit._core.codec",
                "--enum-class-locations",
                "AlphaMode:avatarkit._core.render",
            ],
            check=True,
            cwd=tmp,
        )
        generated = pathlib.Path(tmp) / "avatarkit" / "_core"
        for stub in generated.glob("*.pyi"):
            _polish(stub)
        if TARGET.exists():
            shutil.rmtree(TARGET)
        shutil.copytree(generated, TARGET)
    # Imports sorted as the linter wants them (stubgen does not), then formatted.
    subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "I", "--fix", "--quiet", str(TARGET)], check=False
    )
    subprocess.run([sys.executable, "-m", "ruff", "format", "--quiet", str(TARGET)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
