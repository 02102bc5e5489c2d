"""Lines: the line, soft-edge and scribble pictures ControlNets follow, as comfyui_controlnet_aux's preprocessors
make them, from the model files its users already have."""
