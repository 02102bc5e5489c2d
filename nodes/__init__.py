"""Kinograph's built-in node library: one sub-package per category.

Registered like any node pack: pyproject.toml names this package in the `kinograph.nodes`
entry-point group, and the registry imports the modules listed here. A new file that declares
nodes must be added to NODE_MODULES (tests/test_registry.py checks that none is missing)."""

NODE_MODULES = [
    "nodes.color.nodes",
    "nodes.consistency.noise_nodes",
    "nodes.consistency.sampling_nodes",
    "nodes.depth.nodes",
    "nodes.generate.audio_nodes",
    "nodes.generate.causal_nodes",
    "nodes.generate.hunyuan_nodes",
    "nodes.generate.infinitetalk_nodes",
    "nodes.generate.ipadapter_nodes",
    "nodes.generate.kandinsky5_nodes",
    "nodes.generate.ltx2_nodes",
    "nodes.generate.nodes",
    "nodes.generate.redux_nodes",
    "nodes.generate.region_nodes",
    "nodes.generate.split_nodes",
    "nodes.generate.vace_nodes",
    "nodes.generate.wan_animate_nodes",
    "nodes.interpolate.nodes",
    "nodes.io.nodes",
    "nodes.lines.nodes",
    "nodes.math.nodes",
    "nodes.mask.nodes",
    "nodes.metrics.nodes",
    "nodes.metrics.seam",
    "nodes.mini.nodes",
    "nodes.normals.nodes",
    "nodes.motion.camera_nodes",
    "nodes.motion.motion_nodes",
    "nodes.pose.nodes",
    "nodes.preprocess.nodes",
    "nodes.relight.nodes",
    "nodes.restore.nodes",
    "nodes.stylize.nodes",
    "nodes.upscale.nodes",
    "nodes.video.nodes",
    "nodes.video.test_pattern",
]
