"""
Audio to animation: log-mel features, viseme classifier, face.
"""

from __future__ import annotations

import collections.abc
import typing

import numpy
import numpy.typing

class AcousticModel:
    """
    A phone model trained on recorded speech (context-independent senones; immutable).
    """
    def __init__(
        self,
        means: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        precisions: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        constants: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        log_weights: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        cmn_prior: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        cmn_prior_frames: typing.SupportsFloat | typing.SupportsIndex = 100.0,
        cmn_memory_frames: typing.SupportsFloat | typing.SupportsIndex = 500.0,
    ) -> None:
        """
        ``means``/``precisions`` (codebooks, 3, densities, N_CEPSTRA), ``constants`` (codebooks, 3,
        densities), ``log_weights`` (3, codebooks, densities, 3), ``cmn_prior`` (N_CEPSTRA,).
        """
    def likelihoods(
        self, streams: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]
    ) -> numpy.typing.NDArray[numpy.float32]:
        """
        Senone log-likelihoods (frames x senones) of mean-normalised cepstra with deltas and double deltas.
        """
    @property
    def senones(self) -> int:
        """
        Context-independent senones (3 per phone).
        """

class Model:
    """
    The viseme classifier's weights (immutable, shared by sessions).
    """
    def __init__(
        self,
        mean: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        inv_std: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        projection_weight: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        projection_bias: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        offsets: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex],
        weights: collections.abc.Sequence[typing.Annotated[numpy.typing.ArrayLike, numpy.float32]],
        biases: collections.abc.Sequence[typing.Annotated[numpy.typing.ArrayLike, numpy.float32]],
        stream_prior: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None = None,
        stream_params: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex] = [],
        acoustic: AcousticModel | None = None,
        heads: typing.SupportsInt | typing.SupportsIndex = 1,
        acoustic_causal: bool = False,
        recurrent: collections.abc.Sequence[typing.Annotated[numpy.typing.ArrayLike, numpy.float32]] | None = None,
        recurrent_blocks: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex] = [],
        recurrent_initial: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None = None,
    ) -> None:
        """
        ``mean``/``inv_std`` and the projection's rows: one per input, the N_MELS log-mel values, then,
        with an ``acoustic`` model, its senone scores (the rows of acoustic_features, with ``causal`` when
        ``acoustic_causal``). The last layer gives N_VISEMES logits per head; head d reads the subframe d
        steps (10 ms) before the one classified. ``recurrent``: a GRU between the splice and the layers,
        [input_weight (splice x 3H), input_bias, state_weight (H x 3H), state_bias], gates r, u, n laid out
        per block of ``recurrent_blocks`` (units per merged network; default one block of H); a stream
        starts from ``recurrent_initial`` (H values in [-1, 1]; default zeros).
        """
    def classify_sequence(
        self, spliced: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]
    ) -> numpy.typing.NDArray[numpy.float32]:
        """
        Viseme probabilities (steps x heads x N_VISEMES) of consecutive splices of projections, as a
        session classifies its subframes (a recurrent model's state starts where a session's does).
        """
    def project(
        self, inputs: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]
    ) -> numpy.typing.NDArray[numpy.float32]:
        """
        Each feature frame's projection (frames x P): normalised, dense, ReLU.
        """
    @property
    def acoustic(self) -> AcousticModel | None:
        """
        The acoustic model whose scores the network reads, or None.
        """
    @property
    def acoustic_causal(self) -> bool:
        """
        Whether the network reads causal acoustic rows (acoustic_features(..., causal=True)).
        """
    @property
    def future(self) -> int:
        """
        Feature frames of future context (10 ms each).
        """
    @property
    def heads(self) -> int:
        """
        Output heads: head d reads the subframe d steps (10 ms) before the one classified.
        """
    @property
    def inputs(self) -> int:
        """
        Values per feature frame: N_MELS, plus the acoustic model's senones.
        """
    @property
    def parameter_count(self) -> int:
        """
        Number of weights and biases (not the zeros outside each weight row's non-zero span, such as a merged ensemble's off-diagonal blocks).
        """
    @property
    def past(self) -> int:
        """
        Feature frames of past context.
        """
    @property
    def recurrent_size(self) -> int:
        """
        Units of the recurrent layer's state (0: no recurrent layer).
        """
    @property
    def stream_normalized(self) -> bool:
        """
        Whether sessions normalise each stream's features (see normalize_stream).
        """

class Session:
    """
    One request's streaming engine state; not thread-safe.
    """
    def __init__(
        self,
        model: Model,
        sample_rate: typing.SupportsInt | typing.SupportsIndex,
        smoothing: typing.SupportsInt | typing.SupportsIndex = 2,
        nonverbal: bool = True,
        seed: typing.SupportsInt | typing.SupportsIndex = 24301,
        closure: typing.SupportsFloat | typing.SupportsIndex = 0.949999988079071,
        smoothing_ahead: typing.SupportsInt | typing.SupportsIndex = 2,
    ) -> None: ...
    def flush(self) -> numpy.typing.NDArray[numpy.float32]:
        """
        End of the request: the remaining frames (ceil(duration / 40 ms) in all). Later calls return none.
        """
    def push(self, pcm: typing.Annotated[numpy.typing.ArrayLike, numpy.int16]) -> numpy.typing.NDArray[numpy.float32]:
        """
        Add int16 samples; returns the frames that became ready (frames x N_CHANNELS, float32).
        """
    def push_float(
        self, samples: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]
    ) -> numpy.typing.NDArray[numpy.float32]:
        """
        Add float samples in [-1, 1]; returns the frames that became ready.
        """
    @property
    def finished(self) -> bool:
        """
        Whether flush() was called.
        """
    @property
    def frames_emitted(self) -> int:
        """
        Frames returned so far.
        """
    @property
    def lookahead_ms(self) -> float:
        """
        Audio after a frame's end needed before it is emitted, in milliseconds.
        """
    @property
    def sample_rate(self) -> int:
        """
        Input rate in Hz.
        """
    @property
    def samples_pushed(self) -> int:
        """
        Samples received so far.
        """

def acoustic_features(
    samples: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
    sample_rate: typing.SupportsInt | typing.SupportsIndex,
    model: AcousticModel,
    causal: bool = False,
) -> numpy.typing.NDArray[numpy.float32]:
    """
    Senone log-posteriors (frames x senones, the frames of log_mel) of mono samples in [-1, 1]: running
    cepstral mean removed, deltas over +-3 frames, flat prior, floored at -40. Row j is frame
    j - ACOUSTIC_LAG's (the first ACOUSTIC_LAG rows are uniform). ``causal``: row j is frame j's own,
    its static cepstra with the delta of frame j - 2 and the double delta of frame j - 3 (no frame
    after j is read).
    """

def cepstra(
    samples: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
    sample_rate: typing.SupportsInt | typing.SupportsIndex,
) -> numpy.typing.NDArray[numpy.float32]:
    """
    Acoustic cepstra (frames x N_CEPSTRA, float32) of mono samples in [-1, 1], the frames of log_mel:
    CMU Sphinx's front end (25 mel bands 130-6800 Hz, log, DCT, lifter 22) with one LSB of dither.
    """

def log_mel(
    samples: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
    sample_rate: typing.SupportsInt | typing.SupportsIndex,
) -> numpy.typing.NDArray[numpy.float32]:
    """
    Log-mel features (frames x N_MELS, float32) of mono samples in [-1, 1]: 25 ms Hann windows every
    10 ms; frame j ends at sample round((j + 1) * rate / 100). The same features a Session computes.
    """

def normalize_stream(
    log_mel: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
    prior: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
    params: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex] = [],
) -> numpy.typing.NDArray[numpy.float32]:
    """
    Per-stream normalisation of log-mel frames, as a Session applies it for a model made with
    ``stream_prior``: each band minus the running mean of the stream's speech frames plus ``prior``.
    ``params``: [prior_frames, memory_frames, gate_db, floor_db] (defaults 30, 300, 20, -75).
    """

def supported_rate(sample_rate: typing.SupportsInt | typing.SupportsIndex) -> bool:
    """
    Whether the engine takes audio at this rate (8000, 16000, 22050, 24000, 32000, 44100, 48000 Hz).
    """

ACOUSTIC_LAG: int = 3
FEATURE_RATE: int = 100
FPS: int = 25
N_CEPSTRA: int = 13
N_CHANNELS: int = 73
N_MELS: int = 40
N_VISEMES: int = 15
