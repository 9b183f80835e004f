"""An IP camera that speaks RTSP: Motion-JPEG over RTP (RFC 2435), interleaved on
the RTSP connection (RFC 2326 §10.12), as cheap cameras and NVRs serve it.

Enough of the protocol for FFmpeg's client (what OpenCV uses for rtsp:// URLs):
OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN. UDP transport is answered with
461 so the client falls back to TCP, which is what it does with real cameras
behind NAT. Frames are real JPEGs from OpenCV; the RTP/JPEG payload carries
their quantisation tables in-band (Q = 255) and the entropy-coded scan.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import cv2
import numpy as np

_MTU = 1400


def _jpeg_parts(jpeg: bytes) -> tuple[bytes, bytes, int, int]:
    """(quantisation tables luma+chroma, scan data, width, height) of a baseline 4:2:0 JPEG."""
    tables: dict[int, bytes] = {}
    i, width, height = 2, 0, 0
    while i < len(jpeg):
        marker, length = jpeg[i + 1], struct.unpack(">H", jpeg[i + 2:i + 4])[0]
        body = jpeg[i + 4:i + 2 + length]
        if marker == 0xDB:  # DQT: one or more (Pq/Tq, 64 bytes) tables
            k = 0
            while k < len(body):
                tables[body[k] & 0x0F] = body[k + 1:k + 65]
                k += 65
        elif marker == 0xC0:  # SOF0
            height, width = struct.unpack(">HH", body[1:5])
            if body[7] != 0x22:
                raise ValueError("RTP/JPEG type 1 needs 4:2:0 sampling")
        elif marker == 0xDA:  # SOS: the scan runs to the EOI marker
            return tables[0] + tables[1], jpeg[i + 2 + length:-2], width, height
        i += 2 + length
    raise ValueError("no scan in JPEG")


def rtp_packets(jpeg: bytes, seq: int, timestamp: int, ssrc: int = 0x0ED6E7AD) -> list[bytes]:
    qtables, scan, width, height = _jpeg_parts(jpeg)
    packets, offset = [], 0
    while offset < len(scan):
        head = struct.pack(">I", offset & 0xFFFFFF) + bytes([1, 255, width // 8, height // 8])
        if offset == 0:
            head += struct.pack(">BBH", 0, 0, len(qtables)) + qtables
        chunk = scan[offset:offset + _MTU - len(head)]
        offset += len(chunk)
        last = offset >= len(scan)
        rtp = struct.pack(">BBHII", 0x80, (0x80 if last else 0) | 26, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)
        packets.append(rtp + head + chunk)
        seq += 1
    return packets


class RtspCamera:
    """Serves ``frames`` in a loop at ``fps`` to every client; can be unplugged."""

    def __init__(self, frames, fps: float = 10.0, port: int | None = None):
        from helpers import free_port

        self.jpegs = [cv2.imencode(".jpg", np.ascontiguousarray(f), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
                      for f in frames]
        self.fps = fps
        self.port = port or free_port()
        self.sent = 0
        self._stop = threading.Event()
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/live"

    def start(self) -> "RtspCamera":
        self._stop.clear()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(4)
        sock.settimeout(0.2)
        self._sock = sock
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def unplug(self) -> None:
        self._stop.set()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _accept(self) -> None:
        sock = self._sock
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(0.5)
        buf = b""
        playing = False
        try:
            while not self._stop.is_set():
                if playing:
                    self._stream(conn)
                    return
                try:
                    data = conn.recv(4096)
                except socket.timeout:
                    continue
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    playing = self._answer(conn, head.decode("latin-1")) or playing
        except OSError:
            pass
        finally:
            conn.close()

    def _answer(self, conn: socket.socket, request: str) -> bool:
        lines = request.split("\r\n")
        method, url = lines[0].split(" ")[:2]
        headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
        reply = [f"CSeq: {headers.get('cseq', '0')}"]
        body = b""
        status = "200 OK"
        if method == "OPTIONS":
            reply.append("Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN")
        elif method == "DESCRIBE":
            body = ("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=edge-vad test camera\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
                    "m=video 0 RTP/AVP 26\r\na=control:track1\r\n").encode()
            reply += [f"Content-Base: {url.rstrip('/')}/", "Content-Type: application/sdp"]
        elif method == "SETUP":
            if "TCP" not in headers.get("transport", ""):
                status = "461 Unsupported Transport"
            else:
                reply += ["Transport: RTP/AVP/TCP;unicast;interleaved=0-1", "Session: 6E7AD0ED;timeout=60"]
        elif method == "PLAY":
            reply += ["Session: 6E7AD0ED", "Range: npt=0.000-"]
        elif method == "TEARDOWN":
            pass
        else:
            status = "405 Method Not Allowed"
        if body:
            reply.append(f"Content-Length: {len(body)}")
        conn.sendall((f"RTSP/1.0 {status}\r\n" + "\r\n".join(reply) + "\r\n\r\n").encode() + body)
        return method == "PLAY"

    def _stream(self, conn: socket.socket) -> None:
        seq, k = 0, 0
        t = time.monotonic()
        while not self._stop.is_set():
            packets = rtp_packets(self.jpegs[k % len(self.jpegs)], seq, int(k * 90000 / self.fps))
            seq += len(packets)
            conn.sendall(b"".join(b"$\x00" + struct.pack(">H", len(p)) + p for p in packets))
            self.sent += 1
            k += 1
            t += 1.0 / self.fps
            time.sleep(max(0.0, t - time.monotonic()))
