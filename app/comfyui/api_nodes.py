"""ComfyUI's API nodes (its comfy_api_nodes: Kling, Veo, Luma, Runway, ...), told apart from nodes Kinograph lacks.

They run nothing on the machine: ComfyUI sends the prompt to a company's online service and pays with Comfy.org
credits. More than half the files in ComfyUI's templates folder (the api_*.json ones) are built on them, and their
import said only 'no Kinograph equivalent', as for a node Kinograph might map one day. A workflow file does not mark
them, so they are known by the names comfy_api_nodes gives them: the service's name first. Asked only of a node that
no rule maps, so a node Kinograph runs is never taken for one."""
from __future__ import annotations

import re

# TripoSplat's nodes (Tripo(?!Splat)) run a model on the machine.
_SERVICES = ("Beeble", "Bria", "ByteDance", "Clarity", "Claude", "ElevenLabs", "FishAudio", "Gemini", "Grok",
             "HappyHorse", "HeyGen", "Higgsfield", "Kling", "Luma", "Magnific", "Meshy", "MetaMuse", "Minimax",
             "Mirelo", "Moonvalley", "OpenAI", "OpenRouter", "Pika", "Pixverse", "Pruna", "Quiver", "Recraft",
             "Rodin3D", "Runway", "Sonilo", "Stability", "SyncLipSync", "SyncTalking", "Tencent", "Topaz",
             "Tripo(?!Splat)", "Veed", "Veo", "Vidu", "Wavespeed", "Ideogram", "BuildJsonPromptIdeogram")
# The services whose models also run locally under other node names: their API nodes end in Api (Wan2TextToVideoApi,
# QwenImageEditApi, LtxApi25ImageToVideo) or, for Black Forest Labs' and Krea's, in Node (FluxProUltraImageNode).
_API = re.compile(rf"(?:{'|'.join(_SERVICES)})\w*|\w+Api(?:V\d+)?|LtxApi\w+|(?:Flux|Krea)\w*Node(?:V\d+)?")

API_NODE = ("one of ComfyUI's API nodes: ComfyUI sends its work to a company's paid online service (Comfy.org "
            "credits) and runs nothing itself. Kinograph runs models on this machine only, so it has none of them; "
            "a template of a model that runs here is in ComfyUI's templates without the api_ prefix")


def is_api_node(class_type: str) -> bool:
    return bool(_API.fullmatch(class_type))
