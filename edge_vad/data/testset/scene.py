"""The scene of ``vtest.avi``: its splits, perspective (how tall a walker is on each image row) and the
things standing in it that hide what passes behind them."""

from __future__ import annotations

import cv2
import numpy as np

TRAIN_FRAMES = 480  # frames 0-479 of vtest.avi are the training split
DEFAULT_STOP = 795
VIDEO_NAME = "vtest_anomalies.avi"
DEMO_MAX_BYTES = 5_000_000

KINDS = ("vehicle", "bike", "thrown_object", "running", "fast_crossing")

# Geometry of vtest.avi at its native 768x576, measured on frames 480-794:
# median height of walker blobs (frame difference against the median frame)
# against the image row of their feet, fitted with a line. Walkers are ~59 px
# tall near the back of the plaza (y=175) and ~150 px at the bottom edge.
NATIVE_WIDTH = 768
PERSON_HEIGHT_PER_ROW = 0.228
PERSON_HEIGHT_AT_ROW_0 = 19.8
PERSON_METRES = 1.75
# Walkers move a median 0.05 (IQR 0.03-0.07) body heights per frame; 0.06 is
# "walking speed" for the speed ratios below.
WALK_SPEED = 0.06

# Things in the scene that stand in front of anything whose feet are further
# back (higher in the image) than their own base: (ground row, polygons).
OCCLUDERS = (
    (392, [[(426, 30), (438, 30), (438, 393), (426, 393)],  # lamp post
           [(398, 18), (438, 18), (438, 40), (398, 40)],  # lamp head
           [(412, 201), (446, 201), (446, 244), (412, 244)]]),  # sign
    (478, [[(503, 336), (511, 336), (511, 352), (503, 352)],  # tripod head
           [(505, 350), (508, 350), (462, 471), (458, 470)],  # tripod legs
           [(505, 350), (509, 350), (509, 452), (505, 452)],
           [(506, 350), (510, 350), (527, 480), (523, 480)]]),
)

FIRST_NORMAL_FRAMES = 15
MIN_GAP = 12
MIN_EVENT, MAX_EVENT = 10, 40
MAX_ANOMALOUS_FRACTION = 0.45
# Objects less visible than this (cut by the frame edge) are not drawn at all,
# so that a label of 1 always means "an anomaly can be seen".
MIN_VISIBLE = 0.15
# Share of the frame interval the shutter is open; sets motion-blur length.
EXPOSURE = 0.2
SUPERSAMPLE = 4
GRAVITY = 9.81
# The camera looks down at roughly 20 degrees: the roof of the parked van in
# the back shows about 0.3 times as deep as the van is high.
TOP_FACE_RATIO = 0.3

# Each kind: band of foot rows (native pixels) its path may use and its speed
# in person heights per frame (a multiple of WALK_SPEED).
KIND_BANDS = {
    "vehicle": (225, 300),
    "bike": (380, 470),
    "thrown_object": (270, 450),
    "running": (300, 440),
    "fast_crossing": (215, 300),
}
KIND_SPEEDS = {
    "vehicle": (0.45, 0.60),  # 8-10x walking, ~30 km/h
    "bike": (0.18, 0.24),  # 3-4x walking
    "running": (0.24, 0.30),  # 4-5x walking
    "fast_crossing": (0.85, 1.1),  # 15-18x walking: across the view in about ten frames
}
THROW_FRAMES = (14, 19)

PALETTE_CAR = [(190, 190, 195), (40, 40, 160), (110, 60, 35), (230, 230, 230), (45, 45, 50), (50, 85, 50)]
# Muted, like what the walkers in the footage wear (BGR).
PALETTE_JACKETS = [(38, 38, 42), (55, 60, 70), (40, 40, 120), (60, 75, 55), (105, 105, 110), (90, 70, 45)]
PALETTE_TROUSERS = [(120, 85, 55), (40, 40, 42), (75, 75, 80), (95, 70, 50)]
PALETTE_BALL = [(30, 30, 210), (20, 200, 230), (200, 120, 20), (235, 235, 235)]
SKIN = (120, 150, 195)




def scene_scale(frame_width: int) -> float:
    return frame_width / NATIVE_WIDTH


def person_height(row: float, frame_width: int = NATIVE_WIDTH) -> float:
    """Height in pixels of a walker whose feet are on image row ``row``."""
    s = scene_scale(frame_width)
    return PERSON_HEIGHT_PER_ROW * row + PERSON_HEIGHT_AT_ROW_0 * s


def px_per_m(row: float, frame_width: int) -> float:
    return person_height(row, frame_width) / PERSON_METRES


def occluder_masks(shape: tuple[int, int]) -> list[tuple[float, np.ndarray]]:
    s = scene_scale(shape[1])
    masks = []
    for ground, polys in OCCLUDERS:
        mask = np.zeros(shape, np.float32)
        pts = [np.round(np.array(p, np.float64) * s).astype(np.int32) for p in polys]
        cv2.fillPoly(mask, pts, 1.0)
        # The real edges are soft (optics, JPEG); a hard cut would look pasted.
        masks.append((ground * s, cv2.GaussianBlur(mask, (0, 0), 0.8)))
    return masks


# Anomalies of appearance and stillness (the "still" clip): each is abnormal for what it is or where it
# stays, not for how fast it moves.
STILL_KINDS = ("left_object", "lying_person", "lawn_intruder")
STILL_DURATIONS = {"left_object": (40, 55), "lying_person": (35, 50), "lawn_intruder": (30, 45)}
FALL_FRAMES = 4  # a person falling takes about 0.4 s to reach the ground

# Lawns, in native pixels with a margin inside their edges: where "something where nothing ever is" may
# stand. Nobody walks on them in frames 0-479; people cross the front lawn in frames 480-794, so the spot
# is chosen at rendering among these, away from every walker of the clip.
LAWN = ((0, 268), (330, 372), (560, 440), (768, 506), (768, 576), (0, 576))
UPPER_LAWN = ((90, 142), (380, 140), (560, 132), (560, 118), (330, 106), (90, 128))
LAWNS = (LAWN, UPPER_LAWN)
PALETTE_BAGS = [(40, 40, 45), (30, 35, 110), (90, 60, 30), (60, 80, 60), (150, 150, 160), (25, 90, 160)]
