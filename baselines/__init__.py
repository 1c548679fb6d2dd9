"""Baselines and variants of CLIP, on minclip's encoders, data and training conventions (minclip never imports these).

    simclr      SimCLR: two augmented views, NT-Xent (Chen et al. 2020)
    mae         masked autoencoder on minclip's ViT (He et al. 2022)
    supervised  the same tower, trained with labels: the robustness line's family (CLIP §3.3)
    lit         LiT: a locked image tower, a text tower trained with CLIP's loss (Zhai et al. 2022)
    slip        SLIP: CLIP's loss plus SimCLR's (Mu et al. 2022)
    common      what the baselines share on minclip's training loop (minclip/loop.py): flags, start, `load`
    evaluate    probes, kNN, k-shot, zero-shot and domain shift, the same for every model
    compare     `python -m baselines.compare`: everything at one budget, a table and figures
    zoo         `baselines.zoo.load("simclr-tiny-shapeworld")`: trained once, cached
FLIP (patch dropout) is `python -m minclip.train --patch-dropout 0.5`.
"""
