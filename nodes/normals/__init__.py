"""Normals: the surface-normal pictures normal-map ControlNets follow, as comfyui_controlnet_aux's preprocessors
make them, from the model files its users already have."""
