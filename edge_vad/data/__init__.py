"""Reading frames and labels (no torch here; the runtime shares it)."""

from edge_vad.data.frames import VideoInfo, read_frames, video_info
from edge_vad.data.labels import load_labels

__all__ = ["VideoInfo", "read_frames", "video_info", "load_labels"]
