"""A long command's stages as they happen: each stage a line with the time so far, and, on a
terminal, a live line below them with the current stage and a running clock (``convert``
takes minutes and is silent for long stretches inside a stage)."""

from __future__ import annotations

import sys
import threading
import time

from tqdm import tqdm


class StageProgress:
    def __init__(self, what: str, out=None, live: bool | None = None, tick_s: float = 1.0):
        self.what = what
        self.out = out or sys.stdout
        self.live = sys.stderr.isatty() if live is None else live
        self.tick_s = tick_s
        self.stages = 0
        self._bar = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> "StageProgress":
        self.t0 = time.monotonic()
        if self.live:
            self._bar = tqdm(total=None, file=sys.stderr, leave=False, desc=f"{self.what}: starting",
                             bar_format="{desc}  [{elapsed}]")
            self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._ticker.start()
        return self

    def _tick(self) -> None:
        while not self._stop.wait(self.tick_s):
            self._bar.refresh()  # the clock moves while a stage works

    def stage(self, message: str) -> None:
        self.stages += 1
        line = f"[{time.monotonic() - self.t0:6.1f} s] {message}"
        if self._bar is None:
            print(line, file=self.out, flush=True)
            return
        self._bar.write(line, file=self.out)
        self._bar.set_description_str(f"{self.what} stage {self.stages}: {message.splitlines()[0][:70]}")

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self._bar is not None:
            self._bar.close()
