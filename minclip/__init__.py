"""minclip: a teaching codebase for CLIP (Radford et al. 2021)."""
from .config import CLIPConfig, TextConfig, VisionConfig
from .model import CLIP, CLIPOutput
