import cv2
import numpy as np
import pytest

from edge_vad.data.frames import read_frames, video_info
from edge_vad.data.labels import load_labels
from edge_vad.data.appearance import preprocess
from edge_vad.data.spec import InputSpec
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
