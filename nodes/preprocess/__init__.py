"""comfyui_controlnet_aux's model-free preprocessors (Canny Edge, Tile, Color, Binary Lines, Content Shuffle) and ImageInvert: the
control pictures its ControlNet workflows make, step for step as the pack makes them."""
