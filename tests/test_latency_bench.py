"""The end-to-end latency benchmark measures what it claims (bench/e2e_latency.py, run briefly)."""

from __future__ import annotations

import asyncio
import pathlib
import sys

import pytest

from render_helpers import require_gl

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))


@pytest.fixture(autouse=True)
def _isolated(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_gl()
    monkeypatch.setenv("AVATARKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize("mode", ["sdk", "local"])
@pytest.mark.parametrize("low_latency", [False, True], ids=["standard", "low-latency"])
def test_every_chunk_reaches_the_screen_and_never_before_its_motion_can_exist(low_latency: bool, mode: str) -> None:
    import e2e_latency

    chunk_ms = 40.0
    measure = e2e_latency.measure(2.0, chunk_ms, 30.0, 128, low_latency=low_latency, mode=mode)
    result = asyncio.run(measure)
    # What the service said in its handshake, or what the engine in process says.
    assert result.lookahead_ms == (0.0 if low_latency else 80.0)
    assert result.chunks == 50
    assert len(result.latencies_ms) == result.chunks  # every chunk's motion was rendered
    # Causality: a chunk's first motion frame needs look-ahead audio past the chunk's start, and that
    # audio is sent at the earliest look-ahead minus one chunk after this chunk. A latency below this
    # would mean the benchmark credits frames that do not carry the chunk's motion.
    floor = max(0.0, result.lookahead_ms - chunk_ms)
    assert min(result.latencies_ms) >= floor - 1.0
    assert 0.0 <= result.late_share <= 1.0
    assert result.frames > 40
    assert "latency p50" in result.summary()
