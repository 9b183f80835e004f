"""Frames in: camera and file sources, and the motion gate that decides whether the model must look."""
