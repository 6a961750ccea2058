"""The candidates of the CPU-default sweep that sslbench does not (yet) name, registered for one ``sslbench train``
run: ``python results/sweeps/cpu-default/candidates.py <sslbench train arguments>``.

It adds backbone and augmentation-preset *names* to the lists that ``sslbench train`` validates against, so every
candidate is an ordinary ``kind="train"`` record whose ``backbone`` / ``augment`` fields name what ran:

backbones (all Conv3×3(bias=False)-BN-ReLU blocks, global average pooling, channels_last, torchvision init):
  ``convnet_mp``   widths 32, 64, 128 at stride 1, a 2×2 max-pool after the first two blocks (the classic small
                   MNIST convnet; the maps are 28×28, 14×14, 7×7: 2.3× the multiply-adds of ``convnet``)
  ``convnet_mid``  widths 48, 96, 192 at strides 2, 2, 1 (``convnet`` 1.5× wider, out_dim 192)
  ``convnet_pool_w256``  ``convnet_mp`` with a last block 256 wide (out_dim 256; the last block's multiply-adds 2×)
  ``convnet_pool_p2``    ``convnet_mp`` with a 2×2 average pool at the end instead of the global one (out_dim 512:
                   the 7×7 map's four quadrants, so the features keep a coarse layout)
augmentation presets (Fashion-MNIST, 1×28×28; the fields of sslbench.training.augment.AugmentConfig):
  ``mnist_strong`` crop scale (0.25, 1), flip 0.5, brightness/contrast jitter 0.4 with p 0.8, blur p 0.2 σ (0.1, 1)
                   3×3 (the ``mnist`` preset plus jitter and a tighter crop floor)
  ``mnist_strong2`` ``mnist_strong`` with crop scale (0.2, 1) and blur p 0.5, σ (0.1, 1.5)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import torch
from torch import nn

from sslbench.training import augment, models

BACKBONE_BLOCKS = {  # (width, stride, max-pool after) per block
    "convnet_mp": ((32, 1, True), (64, 1, True), (128, 1, False)),
    "convnet_mid": ((48, 2, False), (96, 2, False), (192, 1, False)),
    "convnet_pool_w256": ((32, 1, True), (64, 1, True), (256, 1, False)),
    "convnet_pool_p2": ((32, 1, True), (64, 1, True), (128, 1, False)),
}
#: the candidates that sslbench now has under another name (tests/test_config_defaults.py checks that each pair
#: is the same network)
SSLBENCH_NAMES = {"convnet_mp": "convnet_pool", "convnet_pool_p2": "convnet_pool_2x2"}
#: the side of the final average pool (1: global average pooling)
OUT_POOL = {"convnet_pool_p2": 2}
AUGMENT_OVERRIDES = {
    "mnist_strong": dict(crop_scale=(0.25, 1.0), jitter_p=0.8, brightness=0.4, contrast=0.4),
    "mnist_strong2": dict(crop_scale=(0.2, 1.0), jitter_p=0.8, brightness=0.4, contrast=0.4, blur_p=0.5,
                          blur_sigma=(0.1, 1.5)),
}


class BlockNet(nn.Module):
    def __init__(self, in_channels: int, blocks, out_pool: int = 1):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for w, stride, pool in blocks:
            layers += [nn.Conv2d(c, w, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(w),
                       nn.ReLU(inplace=True)]
            if pool:
                layers.append(nn.MaxPool2d(2))
            c = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(out_pool)
        self.out_dim = c * out_pool * out_pool
        models._init_conv_bn(self)
        self.to(memory_format=torch.channels_last)

    def forward(self, x):
        x = x.contiguous(memory_format=torch.channels_last)
        return torch.flatten(self.pool(self.features(x)), 1)


def register() -> None:
    build, preset_config, resolve = models.build_backbone, augment.preset_config, augment.resolve_preset

    def build_backbone(name, in_channels, image_size, **kwargs):
        if name in BACKBONE_BLOCKS:
            model = BlockNet(in_channels, BACKBONE_BLOCKS[name], OUT_POOL.get(name, 1))
            model.name = name
            return model
        return build(name, in_channels, image_size, **kwargs)

    def preset_config_(preset, image_shape):
        if preset in AUGMENT_OVERRIDES:
            return dataclasses.replace(preset_config("mnist", image_shape), **AUGMENT_OVERRIDES[preset])
        return preset_config(preset, image_shape)

    models.BACKBONES = models.BACKBONES + tuple(BACKBONE_BLOCKS)
    models.MIN_IMAGE_SIZE.update({name: 8 for name in BACKBONE_BLOCKS})
    models.build_backbone = build_backbone
    augment.PRESETS = augment.PRESETS + tuple(n for n in AUGMENT_OVERRIDES if n not in augment.PRESETS)
    augment.resolve_preset = lambda shape, preset="auto": preset if preset in AUGMENT_OVERRIDES else resolve(shape, preset)
    augment.preset_config = preset_config_


def main(argv=None) -> int:
    from sslbench.training import train

    register()
    parser = argparse.ArgumentParser(prog="candidates.py")
    train.add_arguments(parser)
    return train.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
