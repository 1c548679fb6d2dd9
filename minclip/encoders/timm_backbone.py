"""Any timm image backbone as CLIP's image tower: timm's pooled features, then a linear projection to E."""
import torch.nn as nn


class TimmVision(nn.Module):
    def __init__(self, name: str, embed_dim: int, image_size: int):
        super().__init__()
        import timm  # a runtime dependency, imported here so that the plain towers do not pay for it

        if name not in timm.list_models():
            raise ValueError(f"timm has no model {name!r}; see timm.list_models() (e.g. 'resnet18')")
        self.image_size = image_size
        # pretrained=False: nothing is downloaded; num_classes=0 returns the pooled features
        self.trunk = timm.create_model(name, pretrained=False, num_classes=0)
        self.proj = nn.Linear(self.trunk.num_features, embed_dim, bias=False)

    def forward(self, images):
        """images (B, 3, H, W) -> (B, E)."""
        return self.proj(self.trunk(images))
