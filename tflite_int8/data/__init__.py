"""Data in and out: image files, the readers that feed calibration and verification, safe output folders."""
