"""Every node that encodes its pictures as the Wan 2.1 VAE's latents refuses another family's VAE in the same words,
naming itself and the files to connect (ten copies had drifted: some named one file, some none, some not the node)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from graph_engine import NodeError
from graph_engine.context import Context
from graph_engine.executor import call_node
from graph_engine.registry import Registry
from nodes.generate.handles import ComponentHandle

WAN_NODES = ["condition.humo", "condition.s2v", "condition.wan_dancer", "condition.bernini", "condition.wan_animate",
             "condition.wan_animate2", "condition.wan_scail", "condition.ar_start", "condition.vace",
             "condition.infinitetalk", "encode.joyimage_edit"]


@pytest.fixture(scope="module")
def registry():
    reg = Registry()
    reg.load_entry_points()
    return reg


@pytest.mark.parametrize("kind", WAN_NODES)
def test_a_wan_node_refuses_another_family_s_vae_by_name(registry, kind):
    spec = registry.get(kind)
    sd_vae = ComponentHandle("sd", "vae-ft-mse-840000.safetensors", None, "vae")
    picture = np.zeros((64, 64, 3), np.uint8)
    # every input something of its kind far enough for the VAE to be looked at: the VAE is the one thing wrong
    given = {"vae": sd_vae, "text_encoder": SimpleNamespace(family="joyimage"), "start_image": picture,
             "model": SimpleNamespace(family="wan", option=lambda name, default=None: default),
             "model_patch": SimpleNamespace(family="wan", pipe=None)}
    inputs = {port: given.get(port, SimpleNamespace()) for port, p in spec.inputs.items() if not p.optional}
    inputs.update({port: given[port] for port in spec.inputs if port in given})
    with pytest.raises(NodeError) as refused:
        call_node(spec, Context("n"), inputs, {})
    assert str(refused.value) == (f"{kind} encodes its pictures with the Wan 2.1 VAE; this VAE is sd's. Connect the "
                                  "Wan 2.1 VAE (wan_2.1_vae.safetensors or Wan2_1_VAE_bf16.safetensors)")
