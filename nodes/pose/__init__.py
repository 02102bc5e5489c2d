"""Pose: OpenPose-style pose pictures from DWPose models the user keeps locally."""
