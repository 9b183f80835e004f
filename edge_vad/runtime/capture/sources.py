"""Frame sources: video files, V4L2 devices / OpenCV indices, RTSP/HTTP streams,
GStreamer pipelines (e.g. Jetson CSI ``nvarguscamerasrc ... ! appsink``) and
Raspberry Pi cameras through picamera2.

Every frame carries a capture timestamp. Files are timed by their own clock
(start of playback + position), so a file replays like a camera but as fast as
the model allows, and the stream ends when the file does.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_vad.errors import EdgeVadError
from edge_vad.runtime.clock import SYSTEM_CLOCK

log = logging.getLogger("edge_vad.capture")


@dataclass
class Frame:
    image: np.ndarray  # BGR uint8
    timestamp: float  # seconds since the epoch, at capture
    index: int  # position in the source, counting every decoded frame
    gap: float = 0.0  # seconds the source was lost just before this frame (0: continuous)


def _is_device(source: str) -> bool:
    return source.isdigit() or source.startswith("/dev/video")


#: network protocols OpenCV's FFmpeg backend opens (a camera to reconnect to when it drops)
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "rtp", "srt")


def _scheme(source: str) -> str | None:
    head, sep, _ = source.partition("://")
    return head.lower() if sep and head.replace("+", "").replace("-", "").isalnum() else None


def normalise_source(source: str) -> str:
    """``file://PATH`` is the file PATH; an unknown ``scheme://`` is a mistake, not a camera to retry forever."""
    s = str(source)
    if " ! " in s:
        return s
    scheme = _scheme(s)
    if scheme == "file":
        return s[len("file://"):]
    if scheme is not None and scheme not in URL_SCHEMES:
        raise EdgeVadError(f"source {s!r}: unknown scheme '{scheme}://'; use a file path, file://PATH, /dev/videoN "
                           f"or an index, a GStreamer pipeline, picamera2[:N], or one of "
                           f"{', '.join(x + '://' for x in URL_SCHEMES)}")
    return s


# --------------------------------------------------------------- the daemon's capture


_URL_TIMEOUT_MS = 5000


def describe_source(source: str) -> str:
    """Which kind of source a string names (for logs and config checks)."""
    s = str(source)
    if s.startswith("picamera2"):
        return "picamera2"
    if " ! " in s:
        return "gstreamer"
    if _is_device(s):
        return "device"
    scheme = _scheme(s)
    if scheme in URL_SCHEMES:
        return "url"
    if scheme is not None and scheme != "file":
        return "unknown"
    return "file"


class _Picamera2Source:
    """Raspberry Pi camera through picamera2 (``picamera2`` or ``picamera2:N``)."""

    def __init__(self, source: str):
        from edge_vad.errors import require

        module = require("picamera2", "picamera", "Raspberry Pi camera capture")
        index = int(source.split(":", 1)[1]) if ":" in source else 0
        self.cam = module.Picamera2(index)
        # RGB888 is laid out B, G, R in memory: exactly OpenCV's BGR.
        self.cam.configure(self.cam.create_video_configuration(main={"format": "RGB888", "size": (640, 480)}))
        self.cam.start()
        self.fps = None

    def read(self):
        return True, self.cam.capture_array("main")

    def release(self) -> None:
        self.cam.stop()
        self.cam.close()


def gstreamer_available() -> bool:
    """Whether this OpenCV can open GStreamer pipelines (pip wheels cannot)."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return line.split(":", 1)[1].strip().upper().startswith("YES")
    return False


GSTREAMER_HINT = (
    "this OpenCV was built without GStreamer (the pip wheels are). On a Jetson use the system OpenCV: "
    "sudo apt-get install -y python3-opencv, create the venv with --system-site-packages and "
    "pip uninstall opencv-python-headless; or name the camera as /dev/videoN instead"
)


class _CvSource:
    def __init__(self, source: str):
        kind = describe_source(source)
        if kind == "gstreamer":
            cap = cv2.VideoCapture(source, cv2.CAP_GSTREAMER)
        elif kind == "device":
            cap = cv2.VideoCapture(int(source) if source.isdigit() else source)
        elif kind == "url":
            # Without timeouts a dead RTSP/HTTP camera blocks read() for minutes.
            cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, _URL_TIMEOUT_MS,
                                                            cv2.CAP_PROP_READ_TIMEOUT_MSEC, _URL_TIMEOUT_MS])
        else:
            cap = cv2.VideoCapture(source)
        self.cap = cap
        if not cap.isOpened():
            cap.release()
            raise OSError(f"cannot open {kind} source {source}")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else None

    def read(self):
        return self.cap.read()

    def release(self) -> None:
        self.cap.release()


def open_source(source: str):
    """An opened source with ``read() -> (ok, image)``, ``release()`` and ``fps``; OSError if it cannot open."""
    if describe_source(source) == "picamera2":
        return _Picamera2Source(source)
    return _CvSource(source)


@dataclass
class CaptureCounters:
    captured: int = 0  # frames read from the source
    dropped: int = 0  # replaced by a newer frame before the scheduler took them
    corrupt: int = 0  # unreadable, empty or wrongly sized frames, skipped
    reconnects: int = 0  # successful re-openings after a loss
    gaps: int = 0
    last_gap_s: float = 0.0


def _normalise(image) -> np.ndarray | None:
    """A BGR uint8 H×W×3 array, or None for anything a camera should not deliver."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.size == 0:
        return None
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or min(image.shape[:2]) < 8:
        return None
    if image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def _what_is_wrong(image) -> str:
    if not isinstance(image, np.ndarray):
        return f"not an image ({type(image).__name__})"
    if image.dtype != np.uint8:
        return f"{image.dtype} pixels, not uint8"
    if image.size == 0:
        return "empty"
    if image.ndim >= 2 and min(image.shape[:2]) < 8:
        return f"{image.shape[1]}×{image.shape[0]} pixels, smaller than 8×8"
    return f"shape {image.shape} is not an H×W gray/BGR/BGRA image"


class CaptureThread:
    """Reads one camera in its own thread; the scheduler takes the newest frame.

    Live sources never queue: a frame not taken before the next one arrives is
    dropped (and counted), so latency cannot grow without bound. Files without
    ``realtime`` are lossless instead: the reader waits for the scheduler, so a
    recording is scored frame by frame as fast as the model allows. A live
    source that fails is reopened with exponential backoff; the first frame
    after the outage carries the length of the gap.
    """

    #: consecutive frames of a new size before the camera is believed to have changed mode
    NEW_SIZE_AFTER = 10

    def __init__(self, name: str, source, realtime: bool | None = None, reconnect: tuple[float, float] = (0.5, 30.0),
                 opener=None, clock=None):
        self.name = name
        self.clock = clock or SYSTEM_CLOCK
        if isinstance(source, str):
            try:
                source = normalise_source(source)
            except EdgeVadError as exc:
                raise EdgeVadError(f"camera {name}: {exc}") from None
        self.source = source
        self._opener = opener or open_source
        kind = describe_source(source) if isinstance(source, str) else "custom"
        self.kind = kind
        # Files and in-process readers end; live cameras are reconnected forever.
        self.is_file = kind in ("file", "custom")
        self.start_at = 0  # files: the first frame to deliver (a restart resumes where the state snapshot was)
        self.delivered = 0  # frames handed to the scheduler
        self.failure: str | None = None  # why a file source gave nothing usable
        if kind == "file" and not Path(source).exists():
            raise EdgeVadError(f"camera {name}: {source}: no such video file or camera device")
        if kind == "gstreamer" and not gstreamer_available():
            raise EdgeVadError(f"camera {name}: GStreamer pipeline source, but {GSTREAMER_HINT}")
        self.realtime = (not self.is_file) if realtime is None else bool(realtime)
        self.reconnect = reconnect
        self.counters = CaptureCounters()
        self.fps: float | None = None
        self.ended = False  # a file reached its end (live sources never end)
        self.interval: float | None = None  # smoothed time between source frames, s
        self._last_stamp: float | None = None
        self.connected = False
        self._cond = threading.Condition()
        self._slot: Frame | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-{name}", daemon=True)
        self._size: tuple[int, int] | None = None
        self._odd_size_run = 0
        self._corrupt_why: str | None = None

    def start(self) -> "CaptureThread":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(10)

    def take(self, timeout: float) -> Frame | None:
        """The newest frame not yet taken, waiting up to ``timeout`` s for one."""
        with self._cond:
            if self._slot is None and not self.ended:
                self._cond.wait(timeout)
            frame, self._slot = self._slot, None
            self._cond.notify_all()
            return frame

    def peek_ready(self) -> bool:
        return self._slot is not None

    def _put(self, frame: Frame) -> None:
        with self._cond:
            if not self.realtime:
                while self._slot is not None and not self._stop.is_set():
                    self._cond.wait(0.1)
            elif self._slot is not None:
                self.counters.dropped += 1
            self._slot = frame
            self._cond.notify_all()

    def _open(self):
        if not isinstance(self.source, str):
            return self.source  # an in-process reader, already open
        return self._opener(self.source)

    def _run(self) -> None:
        delay = self.reconnect[0]
        lost_at: float | None = None
        index = 0
        first_open = True
        while not self._stop.is_set():
            try:
                src = self._open()
            except OSError as exc:
                if self.is_file:
                    self.failure = str(exc)
                    log.error("camera %s: %s", self.name, exc)
                    break
                if lost_at is None:
                    lost_at = time.time()
                    log.error("camera %s: %s; retrying", self.name, exc)
                self._stop.wait(delay)
                delay = min(delay * 2, self.reconnect[1])
                continue
            self.connected = True
            self.fps = getattr(src, "fps", None)
            if lost_at is not None:
                gap = time.time() - lost_at
                if not first_open:
                    self.counters.reconnects += 1
                log.warning("camera %s: back after %.1f s", self.name, gap)
            delay = self.reconnect[0]
            first_open = False
            try:
                index, lost_at = self._read_loop(src, index, lost_at)
            finally:
                self.connected = False
                try:
                    src.release()
                except Exception:  # noqa: BLE001 - a broken driver must not stop reconnecting
                    pass
            if self.is_file:
                break
        if self.is_file and self.failure is None and self.delivered == 0 and not self._stop.is_set():
            c = self.counters
            why = (f"all {c.corrupt} frame(s) unusable ({self._corrupt_why})" if c.corrupt
                   else "no frame could be decoded")
            self.failure = f"{self.source}: no usable frame: {why}"
            log.error("camera %s: %s", self.name, self.failure)
        with self._cond:
            self.ended = True
            self._cond.notify_all()

    def _skip(self, src) -> int:
        """Move a file to ``start_at`` without decoding what is skipped, where the reader can."""
        grab = getattr(getattr(src, "cap", None), "grab", None)
        skipped = 0
        while skipped < self.start_at and not self._stop.is_set():
            ok = grab() if grab is not None else src.read()[0]
            if not ok:
                break
            skipped += 1
        return skipped

    def _read_loop(self, src, index: int, lost_at: float | None):
        clock = self.clock
        period = 1.0 / self.fps if (self.is_file and self.fps) else None
        n = 0
        if self.is_file and self.start_at and index == 0:
            n = index = self._skip(src)
            log.info("camera %s: resuming %s at frame %d", self.name, self.source, index)
        # A file's clock is its position: frame i at start + i / fps, also after a resume.
        start = clock.time() - n * (period or 0.0)
        while not self._stop.is_set():
            try:
                ok, image = src.read()
            except Exception as exc:  # noqa: BLE001 - decoder errors are the camera's, not ours
                log.warning("camera %s: read failed (%s)", self.name, exc)
                ok, image = False, None
            if not ok:
                if self.is_file:
                    return index, None
                log.warning("camera %s: stream lost; reconnecting", self.name)
                return index, time.time()
            if period is not None and self.realtime:
                # A file played like a camera: frames appear at the file's own rate.
                delay = start + n * period - clock.time()
                if delay > 0:
                    clock.sleep(delay, self._stop)
            n += 1
            # A file's frame is stamped with its place on the file's own clock, also when it is played like
            # a camera: the moment it is due, not the moment this thread got round to it.
            stamp = start + (n - 1) * period if period is not None else clock.time()
            self.counters.captured += 1
            if self._last_stamp is not None and 0 < stamp - self._last_stamp < 5:
                d = stamp - self._last_stamp
                self.interval = d if self.interval is None else 0.9 * self.interval + 0.1 * d
            self._last_stamp = stamp
            normal = _normalise(image)
            if normal is None or not self._size_ok(normal):
                self.counters.corrupt += 1
                if self._corrupt_why is None:
                    self._corrupt_why = _what_is_wrong(image) if normal is None else "size differs from the stream's"
                continue
            image = normal
            gap = 0.0
            if lost_at is not None:
                gap = stamp - lost_at
                self.counters.gaps += 1
                self.counters.last_gap_s = gap
                lost_at = None
            frame = Frame(image, stamp, index)
            frame.gap = gap
            self._put(frame)
            self.delivered += 1
            index += 1
        return index, lost_at

    def _size_ok(self, image: np.ndarray) -> bool:
        size = image.shape[:2]
        if self._size is None or size == self._size:
            self._size = size
            self._odd_size_run = 0
            return True
        self._odd_size_run += 1
        if self._odd_size_run >= self.NEW_SIZE_AFTER:
            log.warning("camera %s: frame size changed from %s to %s", self.name, self._size, size)
            self._size = size
            self._odd_size_run = 0
            return True
        return False
