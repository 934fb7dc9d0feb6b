"""The bundled sample avatars, generated from code on first use and kept in the user data folder.

Nothing binary is shipped or downloaded: ``avatarkit.assets.samples`` models the avatars, and the
result is stored under a folder named after a hash of the generator's source, so a new release
regenerates them once and an unchanged one never does.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pathlib
import shutil
import tempfile

import platformdirs

log = logging.getLogger(__name__)


def _generator_fingerprint() -> str:
    from ..assets import samples

    digest = hashlib.sha256()
    paths = [pathlib.Path(samples.__file__)]
    if paths[0].name == "__init__.py":  # a package: every module in it
        paths = sorted(paths[0].parent.rglob("*.py"))
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def samples_root(data_dir: str | os.PathLike[str] | None = None) -> pathlib.Path:
    """Where this version's sample bundles live (``<user data>/avatarkit/samples/<fingerprint>``)."""
    base = pathlib.Path(
        data_dir or os.environ.get("AVATARKIT_DATA_DIR") or platformdirs.user_data_dir("avatarkit", appauthor=False)
    )
    return base / "samples" / _generator_fingerprint()


def ensure_samples(data_dir: str | os.PathLike[str] | None = None) -> pathlib.Path:
    """Build any sample bundle that is missing and return the folder that holds them all.

    Each bundle is built in a scratch folder and renamed into place, so concurrent processes and
    interrupted builds never leave a half-written bundle.
    """
    from ..assets import samples

    root = samples_root(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    for avatar_id in samples.SAMPLE_IDS:
        target = root / avatar_id
        if (target / "manifest.json").is_file():
            continue
        log.info("generating sample avatar %r (once per release)", avatar_id)
        scratch = pathlib.Path(tempfile.mkdtemp(prefix=f".{avatar_id}-", dir=root))
        try:
            samples.build_bundle(avatar_id, scratch)
            try:
                os.rename(scratch, target)
            except OSError:
                if not (target / "manifest.json").is_file():  # not a concurrent build that won
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return root
