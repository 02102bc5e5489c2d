"""The converters of each ComfyUI node pack: a mixin of Converter (convert.py) per pack, its special_<name>
methods the handlers that mapping.py's rules name with special=<name>."""
from .core import CoreNodes
from .core_media import CoreMedia
from .video_models import VideoModels
from .sound_models import SoundModels
from .controlnet import ControlNets
from .controlnet_aux import ControlnetAux
from .animatediff import AnimateDiff
from .ipadapter import IPAdapters
from .segment import Segmentation
from .kjnodes import KJNodes
from .wanvideowrapper import WanVideoWrapper
from .was import WAS
from .rgthree import Rgthree
from .efficiency import Efficiency
from .comfyroll import Comfyroll
from .vhs import VHS
from .frame_interpolation import FrameInterpolation
from .xlabs import XLabs
from .fizznodes import FizzNodes
from .easyuse import EasyUse
from .inspire import Inspire
from .logic import LogicNodes

__all__ = ["CoreNodes", "CoreMedia", "VideoModels", "SoundModels", "ControlNets", "ControlnetAux", "AnimateDiff", "IPAdapters", "Segmentation", "KJNodes", "WanVideoWrapper", "WAS", "Rgthree", "Efficiency", "Comfyroll", "VHS", "FrameInterpolation", "XLabs", "FizzNodes", "EasyUse", "Inspire", "LogicNodes"]
