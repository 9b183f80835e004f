import cv2
import numpy as np
import pytest

from edge_vad.data.frames import read_frames, video_info
from edge_vad.data.labels import load_labels
from edge_vad.data.preprocess import InputSpec, preprocess, to_float
from edge_vad.errors import EdgeVadError


def _write_folder(folder, n=12, suffix=".png"):
    folder.mkdir()
    for i in range(1, n + 1):
        # Ped2 names frames 001.tif…; unpadded names must still sort numerically (2 before 10).
        img = np.full((24, 32, 3), i * 10, np.uint8)
        cv2.imwrite(str(folder / f"{i}{suffix}"), img)
    return folder


def test_image_folder_is_one_video_in_numeric_order(tmp_path):
    folder = _write_folder(tmp_path / "Test001")
    info = video_info(folder)
    assert (info.frames, info.width, info.height) == (12, 32, 24)
    values = [int(f[0, 0, 0]) for f in read_frames(folder)]
    assert values == [i * 10 for i in range(1, 13)]
    assert [int(f[0, 0, 0]) for f in read_frames(folder, 3, 5)] == [40, 50]


def test_empty_folder_and_missing_path_name_the_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgeVadError, match="empty: folder holds no images"):
        video_info(tmp_path / "empty")
    with pytest.raises(EdgeVadError, match="nope.avi: no such video file"):
        video_info(tmp_path / "nope.avi")


def test_labels_from_npy_and_txt(tmp_path):
    np.save(tmp_path / "l.npy", np.array([0, 1, 1, 0]))
    (tmp_path / "l.txt").write_text("0\n1\n1\n0\n")
    assert load_labels(tmp_path / "l.npy").tolist() == [0, 1, 1, 0]
    assert load_labels(tmp_path / "l.txt", frames=4).tolist() == [0, 1, 1, 0]
    with pytest.raises(EdgeVadError, match="4 labels for a video of 5 frames"):
        load_labels(tmp_path / "l.txt", frames=5)
    (tmp_path / "bad.txt").write_text("0\n2\n")
    with pytest.raises(EdgeVadError, match="frame 1 is 2"):
        load_labels(tmp_path / "bad.txt")


def test_preprocess_follows_the_spec():
    frame = np.zeros((60, 80, 3), np.uint8)
    frame[..., 2] = 255  # pure red in BGR
    gray = preprocess(frame, InputSpec("gray", 30, 40))
    assert gray.shape == (1, 30, 40) and gray.dtype == np.float32
    assert gray.max() == pytest.approx(76 / 255, abs=2 / 255)  # ITU-R 601 luma of red
    rgb = preprocess(frame, InputSpec("rgb", 30, 40, low=-1.0, high=1.0))
    assert rgb.shape == (3, 30, 40)
    assert rgb[0].min() == pytest.approx(1.0) and rgb[2].max() == pytest.approx(-1.0)


@pytest.mark.parametrize("size", [(115, 115), (160, 120), (64, 48), (100, 7), (1, 1), (320, 240), (96, 96)])
def test_area_resize_gives_opencvs_inter_area(size):
    """The summed-area path (non-integer factors) reads the same boxes as INTER_AREA: a pixel may
    differ by one grey level from float rounding, almost none do."""
    from edge_vad.data.resize import _MAX_RATIO, area_resize
    from helpers import need_vtest

    frames = list(read_frames(need_vtest(), 300, 306))
    rng = np.random.default_rng(0)
    images = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames]
    images += [rng.integers(0, 256, (576, 768), dtype=np.uint8), np.full((576, 768), 255, np.uint8)]
    table_path = size[0] * size[1] <= _MAX_RATIO * 768 * 576 and (768 % size[0] or 576 % size[1])
    diffs = []
    for img in images:
        ours, cv = area_resize(img, size), cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        assert ours.shape == cv.shape and ours.dtype == np.uint8
        diffs.append(np.abs(ours.astype(int) - cv.astype(int)).ravel())
    d = np.concatenate(diffs)
    assert d.max() <= 1 and (d > 0).mean() < 0.002
    if not table_path:
        assert d.max() == 0  # OpenCV's own resize
    # A colour frame goes to OpenCV unchanged.
    np.testing.assert_array_equal(area_resize(frames[0], size), cv2.resize(frames[0], size, interpolation=cv2.INTER_AREA))


def test_area_resize_box_sums_are_exact_on_a_ramp():
    """Each output pixel is the mean of its box: on a horizontal ramp 0..767, the box of output
    column j spans [j·s, (j+1)·s) with s = 768/115, so its mean is (j + ½)·s − ½."""
    from edge_vad.data.resize import _table

    ramp = np.tile(np.arange(768) / 3, (576, 1))  # 0..255.67: values stay in uint8 range
    img = np.floor(ramp).astype(np.uint8)
    ours = _table(576, 768, 115, 115)(img).astype(float)
    s = 768 / 115
    exact = np.array([img[0, :].astype(float) @ _box(768, j * s, (j + 1) * s) / s for j in range(115)])
    np.testing.assert_allclose(ours[0], np.rint(exact), atol=1)
    assert np.abs(ours - ours[0]).max() <= 1  # equal rows average to the same row (up to a rounding tie)


def _box(n, a, b):
    """Overlap of [a, b) with each unit cell [i, i + 1)."""
    i = np.arange(n)
    return np.clip(np.minimum(i + 1, b) - np.maximum(i, a), 0, None)


def test_rgb_preprocess_swaps_channels_after_the_resize_exactly():
    from helpers import need_vtest

    frame = next(read_frames(need_vtest(), 300, 301))
    spec = InputSpec("rgb", 96, 96)
    before = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), (96, 96), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(preprocess(frame, spec), to_float(before, spec))
