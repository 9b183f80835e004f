"""edge-vad: unsupervised video anomaly detection, from research models to cameras.

Importing this package never imports torch: the on-device runtime must load on
boxes that have only numpy, OpenCV and an inference engine.
"""

__version__ = "0.1.0"
