"""Veil: privacy-preserving camera analytics with learned on-camera obfuscators."""

import os

# FFmpeg inside OpenCV prints its own lines for a corrupt file; Veil reports one clear error
# instead. Set before cv2 is first imported anywhere in the package.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

__version__ = "0.1.0"
