"""Data: ShapeWorld (the offline world), real datasets, and image transforms."""
from minclip.data.captions import ImageCaptionCSV
from minclip.data.datasets import ClassificationData, load_classification
from minclip.data.shapeworld import ShapeWorld, ShapeWorldCaptions, ShapeWorldClassification, gallery
from minclip.data.transforms import CLIP_MEAN, CLIP_STD, clip_preprocess, simclr_augment

__all__ = ["ShapeWorld", "ShapeWorldCaptions", "ShapeWorldClassification", "gallery", "load_classification",
           "ClassificationData", "ImageCaptionCSV", "clip_preprocess", "simclr_augment", "CLIP_MEAN", "CLIP_STD"]
