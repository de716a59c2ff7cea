"""Edits at the source's full resolution: downscale before the run, a 3D LUT after it (see pipeline.py)."""
