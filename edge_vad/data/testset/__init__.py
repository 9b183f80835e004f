"""A reproducible anomaly test set: synthetic anomalies injected into real footage.

The source is ``vtest.avi`` (OpenCV's sample: pedestrians on a plaza seen from
above at an angle, 768x576, 10 fps). Frames 0-479 train the models, so the test
set is built from frames 480-794 only. Into those frames we draw the kinds of
events that the public benchmarks (UCSD Ped, CUHK Avenue, ShanghaiTech) label as
anomalous.

Plausibility matters more than variety: a detector should have to notice an
object's appearance or motion, not a frame that suddenly looks synthetic. So
objects are sized by a perspective model measured on the footage itself (``scene``),
drawn supersampled with soft edges (``sprites``), tone-matched to the hazy camera,
motion-blurred along their path, cast a soft shadow and pass behind the lamp post and
tripod (``layers``); people are cut out of the footage itself (``cutouts``). ``plan``
schedules the events, ``render`` draws them, ``build`` writes the files.

Everything is deterministic for a given seed (numpy ``Generator``); no torch.
"""

from edge_vad.data.testset.build import make_demo_clip, make_testset
from edge_vad.data.testset.render import inject_anomalies
from edge_vad.data.testset.scene import DEFAULT_STOP, KINDS, TRAIN_FRAMES, VIDEO_NAME

__all__ = ["make_testset", "make_demo_clip", "inject_anomalies", "TRAIN_FRAMES", "DEFAULT_STOP", "KINDS", "VIDEO_NAME"]
