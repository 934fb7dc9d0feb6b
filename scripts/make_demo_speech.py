"""Make the demo's bundled speech sample: python/avatarkit/data/demo_speech.ogg.

Festival's kal diphone voice (Debian: festival, festvox-kallpc16k) speaks the text; PyAV encodes it
as Ogg Opus (mono, 16 kHz input, 24 kbit/s) so the committed file stays small. Run it again only to
change the sample; the demo and the tests decode the committed file.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tempfile

import av
import numpy as np
import soundfile

TEXT = (
    "Hello! I am Mira, your AvatarKit for Python sample. "
    "Give me speech, and I move my lips, my eyes and my head to match it."
)
OUT = pathlib.Path(__file__).resolve().parents[1] / "python" / "avatarkit" / "data" / "demo_speech.ogg"


def main() -> int:
    """Synthesize, trim silence at the ends, encode."""
    with tempfile.TemporaryDirectory() as tmp:
        text, wav = pathlib.Path(tmp) / "text.txt", pathlib.Path(tmp) / "speech.wav"
        text.write_text(TEXT)
        subprocess.run(["text2wave", "-eval", "(voice_kal_diphone)", str(text), "-o", str(wav)], check=True)
        samples, rate = soundfile.read(wav, dtype="int16")
    voiced = np.nonzero(np.abs(samples) > 300)[0]
    pad = rate // 10
    samples = samples[max(0, voiced[0] - pad) : voiced[-1] + pad]
    with av.open(str(OUT), "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=48000, layout="mono")
        stream.bit_rate = 24000
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    print(f"{OUT}: {len(samples) / rate:.1f} s, {OUT.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
