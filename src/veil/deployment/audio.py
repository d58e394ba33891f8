"""``--keep-audio``: mux the source's audio back into an obfuscated video with ffmpeg.

By default Veil's videos have no audio and none of the source's container metadata:
OpenCV's VideoWriter writes only the obfuscated frames. Voices identify people, so keeping
the audio is an explicit choice; even then the source's metadata (creation time, device,
GPS location) is not copied.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from veil.errors import VeilError

AUDIO_WARNING = ("--keep-audio copies the source's audio track into the output unobfuscated: "
                 "voices and sounds can identify people")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise VeilError(f"--keep-audio needs {name} on PATH (Debian: apt-get install ffmpeg)")
    return path


def mux_audio(video: Path, source: Path, out: Path) -> None:
    """Write ``out``: the video stream of ``video`` (copied) with the audio of ``source`` (AAC), if any.

    AAC because every container Veil writes (MP4, AVI, MKV, MOV) accepts it whatever the
    source's codec; ``-map_metadata -1`` drops the source's global and stream metadata.
    """
    command = [_tool("ffmpeg"), "-v", "error", "-nostdin", "-y", "-i", str(video), "-i", str(source),
               "-map", "0:v:0", "-map", "1:a?", "-c:v", "copy", "-c:a", "aac",
               "-map_metadata", "-1", "-map_chapters", "-1", str(out)]
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        raise VeilError(f"ffmpeg could not add the audio of {source}: {last}")
