"""Motion and camera control: camera paths, applying them to pictures, point tracks, motion
brushes, flow."""
