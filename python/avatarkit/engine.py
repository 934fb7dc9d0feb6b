"""The audio-to-animation engine: speech PCM in, 25 fps canonical channel frames out, streaming.

Frame ``k`` covers audio from ``40 k`` ms to ``40 (k + 1)`` ms; a request of ``d`` seconds yields
``ceil(d / 0.04)`` frames. A frame is emitted as soon as :attr:`EngineSession.lookahead_ms` of audio
after its end has arrived (80 ms: never more than 100 ms; 0 ms with ``low_latency=True``, which
uses a causal variant of the model).

The signal path runs in C++ (``avatarkit._core.engine``): log-mel features every 10 ms at the
input's own rate, with the standard model also the frame scores of a phone model trained on
recorded speech (pocketsphinx's US English acoustic model, ``avatarkit/data/acoustic_model.npz``),
a small recurrent network (its state carries the stream so far; it reads 60 ms ahead) that gives
the 15 viseme probabilities every 10 ms, a smoothing window per frame (coarticulation), then the face:
viseme weights, ARKit mouth and jaw weights, and a non-verbal layer that follows the voice (brows
and nods on stressed syllables, blinks, gaze shifts, head sway). Output is deterministic: the same
audio gives the same frames whatever the chunking. The network's weights
(``avatarkit/data/lipsync_model.npz``) are made by ``scripts/train_lipsync.py`` from speech it
synthesizes; see ``docs/lipsync.md``.
"""

from __future__ import annotations

import functools
import pathlib

import numpy as np
import numpy.typing as npt

from ._core import engine as _engine
from .codec import CANONICAL_NAMES, VISEME_NAMES

F32 = npt.NDArray[np.float32]

FPS = 25
SUPPORTED_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
MODEL_PATH = pathlib.Path(__file__).parent / "data" / "lipsync_model.npz"
#: The causal variant: no future context (look-ahead 0 ms), a little less accurate; ``low_latency=True``.
LOW_LATENCY_MODEL_PATH = pathlib.Path(__file__).parent / "data" / "lipsync_model_low_latency.npz"
#: pocketsphinx's US English acoustic model (BSD licence), whose senone scores the network reads
#: (made by ``scripts/convert_acoustic_model.py``).
ACOUSTIC_MODEL_PATH = pathlib.Path(__file__).parent / "data" / "acoustic_model.npz"


@functools.lru_cache(maxsize=2)
def load_acoustic_model(path: str | None = None) -> _engine.AcousticModel:
    """The acoustic model from an ``.npz`` written by ``scripts/convert_acoustic_model.py`` (cached).

    Args:
        path: the file; the model shipped in the package when None.
    """
    with np.load(path or ACOUSTIC_MODEL_PATH) as z:
        return _engine.AcousticModel(z["means"], z["precisions"], z["constants"], z["log_weights"], z["cmn_prior"])


#: A recurrent model file's arrays (``recurrent_<key>``), in the order ``engine.Model`` takes them.
RECURRENT_KEYS = ("input_weight", "input_bias", "state_weight", "state_bias")


@functools.lru_cache(maxsize=4)
def load_model(path: str | None = None) -> _engine.Model:
    """The viseme classifier from an ``.npz`` written by ``scripts/train_lipsync.py`` (cached).

    A model trained on the acoustic model's scores (its file says ``acoustic``) gets the shipped
    acoustic model. A file with ``recurrent_state_weight`` has a recurrent (GRU) layer between the
    splice and the dense layers (``recurrent_blocks``: its units per merged network).

    Args:
        path: the file; the model shipped in the package when None.
    """
    with np.load(path or MODEL_PATH) as z:
        layers = int(z["layers"])
        return _engine.Model(
            mean=z["mean"].astype(np.float32),
            inv_std=z["inv_std"].astype(np.float32),
            projection_weight=z["projection_weight"].astype(np.float32),
            projection_bias=z["projection_bias"].astype(np.float32),
            offsets=[int(o) for o in z["offsets"]],
            weights=[z[f"weight{i}"].astype(np.float32) for i in range(layers)],
            biases=[z[f"bias{i}"].astype(np.float32) for i in range(layers)],
            stream_prior=z["stream_prior"].astype(np.float32) if "stream_prior" in z else None,
            stream_params=[float(v) for v in z["stream_params"]] if "stream_params" in z else [],
            acoustic=load_acoustic_model() if "acoustic" in z and bool(z["acoustic"]) else None,
            heads=int(z["heads"]) if "heads" in z else 1,
            acoustic_causal=bool(z["acoustic_causal"]) if "acoustic_causal" in z else False,
            recurrent=[z[f"recurrent_{k}"].astype(np.float32) for k in RECURRENT_KEYS]
            if "recurrent_state_weight" in z
            else None,
            recurrent_blocks=[int(b) for b in z["recurrent_blocks"]] if "recurrent_blocks" in z else [],
            recurrent_initial=z["recurrent_initial"].astype(np.float32) if "recurrent_initial" in z else None,
        )


class EngineSession:
    """One request's worth of streaming state. Not thread-safe; one per request.

    Args:
        sample_rate: the PCM rate in Hz (one of :data:`SUPPORTED_RATES`).
        nonverbal: whether to add brows, nods, blinks, gaze and head sway.
        seed: the idle behaviour's random sequence (blinks, gaze); output is deterministic per seed.
        model: a model from :func:`load_model`; the shipped one when None.
        low_latency: use the shipped causal model and no smoothing after the frame: each frame is
            emitted as soon as its own audio is in (:attr:`lookahead_ms` 0 instead of 80), at some
            cost in accuracy (``docs/lipsync.md``).
        smoothing: 10 ms steps before a frame that blend into it (coarticulation), 0 to 8.
        smoothing_ahead: 10 ms steps after a frame that blend into it, 0 to 8; each adds 10 ms to
            :attr:`lookahead_ms` (default 2, or 0 with ``low_latency``).
        closure: how strongly a level dip turns the PP peak inside a frame into closed lips, 0 to 1.
    """

    channels: tuple[str, ...] = CANONICAL_NAMES

    def __init__(
        self,
        sample_rate: int,
        *,
        nonverbal: bool = True,
        seed: int = 0x5EED,
        model: _engine.Model | None = None,
        low_latency: bool = False,
        smoothing: int = 2,
        smoothing_ahead: int | None = None,
        closure: float = 0.95,
    ) -> None:
        if sample_rate not in SUPPORTED_RATES:
            raise ValueError(f"unsupported sample rate {sample_rate}; use one of {SUPPORTED_RATES}")
        self.sample_rate = sample_rate
        if smoothing_ahead is None:
            smoothing_ahead = 0 if low_latency else 2
        if model is None:
            model = load_model(str(LOW_LATENCY_MODEL_PATH) if low_latency else None)
        self._session = _engine.Session(
            model,
            sample_rate,
            nonverbal=nonverbal,
            seed=seed,
            smoothing=smoothing,
            smoothing_ahead=smoothing_ahead,
            closure=closure,
        )

    @property
    def lookahead_ms(self) -> float:
        """Audio after a frame's end that the engine waits for before emitting the frame, in ms."""
        return float(self._session.lookahead_ms)

    @property
    def frames_emitted(self) -> int:
        """Frames returned so far."""
        return int(self._session.frames_emitted)

    def push(self, pcm: bytes | bytearray | memoryview | npt.NDArray[np.int16]) -> F32:
        """Add PCM16 mono samples (little-endian bytes or a 1-D int16 array); returns the frames that became complete.

        The result is ``n x len(channels)`` float32, possibly with ``n == 0``. Multi-channel audio
        (a 2-D array, e.g. stereo) is refused with ``ValueError``, never reinterpreted as longer
        mono: mix it down first (for example ``pcm.mean(axis=1).astype(np.int16)``).
        """
        if isinstance(pcm, bytes | bytearray | memoryview):
            if len(pcm) % 2:
                raise ValueError("PCM16 audio needs an even number of bytes")
            samples = np.frombuffer(pcm, "<i2")
        else:
            samples = np.asarray(pcm)
            if samples.dtype != np.int16:
                raise ValueError("pcm must be 16-bit signed samples")
            if samples.ndim != 1:
                raise ValueError(
                    f"pcm must be mono: a 1-D array of samples, not an array of shape {samples.shape}; "
                    "mix multi-channel audio down first"
                )
        return np.asarray(self._session.push(samples), np.float32)

    def flush(self) -> F32:
        """End of the request: the remaining frames, so the total is ``ceil(duration / 0.04)``."""
        return np.asarray(self._session.flush(), np.float32)


__all__ = [
    "FPS",
    "LOW_LATENCY_MODEL_PATH",
    "MODEL_PATH",
    "SUPPORTED_RATES",
    "VISEME_NAMES",
    "EngineSession",
    "load_model",
]
