"""Kinograph's built-in node library: one sub-package per category.

Registered like any node pack: pyproject.toml names this package in the `kinograph.nodes`
entry-point group, and the registry imports the modules listed here. A new file that declares
nodes must be added to NODE_MODULES (tests/test_registry.py checks that none is missing)."""

NODE_MODULES = [
    "nodes.color.nodes",
    "nodes.consistency.noise_nodes",
    "nodes.consistency.sampling_nodes",
    "nodes.depth.nodes",
    "nodes.detect.nodes",
    "nodes.generate.audio_nodes",
    "nodes.generate.causal_nodes",
    "nodes.generate.hidream_o1_nodes",
    "nodes.generate.pid_nodes",
    "nodes.generate.hunyuan3d_nodes",
    "nodes.generate.hunyuan_nodes",
    "nodes.generate.infinitetalk_nodes",
    "nodes.generate.ipadapter_nodes",
    "nodes.generate.kandinsky5_nodes",
    "nodes.generate.layout_nodes",
    "nodes.generate.ltx2_nodes",
    "nodes.generate.model_patch_nodes",
    "nodes.generate.nodes",
    "nodes.generate.redux_nodes",
    "nodes.generate.region_nodes",
    "nodes.generate.seedvr2_nodes",
    "nodes.generate.unclip_nodes",
    "nodes.generate.split_nodes",
    "nodes.generate.trellis2_nodes",
    "nodes.generate.vace_nodes",
    "nodes.generate.void_nodes",
    "nodes.generate.wan_animate_nodes",
    "nodes.generate.wan_dancer_nodes",
    "nodes.generate.wan_scail_nodes",
    "nodes.interpolate.nodes",
    "nodes.io.nodes",
    "nodes.lines.nodes",
    "nodes.math.nodes",
    "nodes.math.text_nodes",
    "nodes.mesh.nodes",
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

# Every chat template transformers renders, in the pipelines these nodes call too, goes through the capped child
# (generate.chat_template says why), and diffusers' reading of a part's weights checks the run's cancel
# (generate.diffusers_cancel); routed here, where any node's code is first imported.
from nodes.generate.chat_template import route_chat_templates  # noqa: E402
from nodes.generate.diffusers_cancel import cancellable_diffusers_loads  # noqa: E402

route_chat_templates()
cancellable_diffusers_loads()
