"""Motion and camera control: camera paths, applying them to pictures and latents,
model conditioning (Plücker, CameraCtrl, MotionCtrl), point tracks, motion brushes, flow."""
