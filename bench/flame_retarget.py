"""How well the FLAME-to-mouth map reproduces the engine's mouth on held-out frames.

    python bench/flame_retarget.py

Refits the map of ``scripts/fit_flame_retarget.py`` on the first half of the shared recording of the
commercial service (``../shared/data/official-16000.json``) and reports, on the second half the fit
never saw, the correlation per mouth channel against what this project's engine makes of the same
audio, and closure recall against the engine's PP frames. Baseline in the same run: the jaw-only
retarget that came before (every lip shape from the jaw's opening).
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import fit_flame_retarget as fit  # noqa: E402

from avatarkit.codec import CANONICAL_NAMES  # noqa: E402


def jaw_only_baseline() -> dict[str, float]:
    """Held-out correlation of the old map, where the jaw opening alone drove aa and sil."""
    pcm, rate, flame = fit.load_recording(fit.DEFAULT_RECORDING)
    ours = fit.engine_frames(pcm, rate).astype(np.float64)
    n = min(len(flame), len(ours))
    half = n // 2
    opening = np.clip(flame[half:n, 9] / 0.12, 0, 1)
    return {
        name: float(np.corrcoef(guess, ours[half:n, CANONICAL_NAMES.index(name)])[0, 1])
        for name, guess in (("viseme_aa", opening), ("viseme_sil", 1 - opening))
    }


def main() -> int:
    if not fit.DEFAULT_RECORDING.is_file():
        print(f"no recording at {fit.DEFAULT_RECORDING}", file=sys.stderr)
        return 2
    _, report = fit.fit(fit.DEFAULT_RECORDING)
    print(report)
    base = ", ".join(f"{name} r = {r:.3f}" for name, r in jaw_only_baseline().items())
    print(f"baseline, the jaw-only retarget: {base}; the other 28 lip channels stay at 0 (no correlation)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
