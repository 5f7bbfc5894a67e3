"""The towers: ResNet-18 and VGG-11 (with batch norm) from torchvision, trained from scratch (paper 3.2).

`tower(backbone, in_channels, out_features)` maps a batch of images (3 channels: a frame) or spectrograms
(1 channel) of any size >= 32 pixels to `out_features` numbers per example: a 128-d embedding for the
aggregation models (paper 3.4), or 17 logits for the single-modality baselines (3.3).

    frame        (B, 3, S, S) --> tower("resnet", 3, 128) --> (B, 128)
    spectrogram  (B, 1, S, S) --> tower("resnet", 1, 128) --> (B, 128)

Choices where the paper is silent or loose:
- ResNet: the paper says "ResNet-17" once and ResNet otherwise; torchvision's `resnet18` is the standard
  network nearest to that, used unchanged but for the first convolution's input channels and the output size.
- VGG: the paper does not say which. VGG-11 with batch norm (`vgg11_bn`): the shallowest VGG, so that it is
  trainable from scratch with plain SGD at lr 0.01 (the deeper VGGs without batch norm often do not start
  learning at all from scratch), and comparable in depth to ResNet-18. Its classifier head is replaced: the
  torchvision head (two 4096-wide fully connected layers on a 7x7x512 map, ~120M parameters) would dwarf the
  convolutional part, overfit a dataset of 586 training videos and make CPU runs impractical; like ResNet,
  the tower ends in global average pooling and one linear layer. The 8 convolutions and 5 max-pools -- what
  makes it a VGG -- are unchanged.
- No pretrained weights: nothing can be downloaded, and the paper does not mention pretraining.

`read_tt_agg_towers(path, device)` reads the two trained towers back from a model.pt that tt_agg.py saved,
checked before use (retrieve.py ranks with them).
"""

import warnings

import torch
import torch.nn as nn
import torchvision

BACKBONES = {"resnet": "ResNet-18", "vgg": "VGG-11-BN"}  # flag value -> name printed in tables
EMBEDDING_DIM = 128  # paper 3.4: both towers output a 128-dimension embedding


def tower(backbone, in_channels, out_features):
    """A fresh, randomly initialised network: (B, in_channels, S, S) -> (B, out_features)."""
    if backbone == "resnet":
        net = torchvision.models.resnet18(weights=None, num_classes=out_features)
        if in_channels != 3:  # a spectrogram has one channel; the rest of the network is unchanged
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        return net
    if backbone == "vgg":
        features = torchvision.models.vgg11_bn(weights=None).features  # 8 conv+BN+ReLU, 5 max-pools
        if in_channels != 3:
            features[0] = nn.Conv2d(in_channels, 64, kernel_size=3, padding=1)
        return nn.Sequential(
            features,  # (B, 512, S/32, S/32)
            nn.AdaptiveAvgPool2d(1),  # (B, 512, 1, 1)
            nn.Flatten(),  # (B, 512)
            nn.Linear(512, out_features),
        )  # (B, out_features)
    raise ValueError(f"unknown backbone {backbone!r}: choose one of {', '.join(BACKBONES)}")


def count_parameters(net):
    """The number of parameters (weights and biases) of `net`."""
    return sum(p.numel() for p in net.parameters())


def precision(choice, device):
    """The arithmetic the towers run in: 'auto' -> 'bf16' on CUDA (bf16 autocast and channels-last memory
    format: tensor cores, about half the memory traffic), 'fp32' elsewhere (a CPU gains little from
    either); 'bf16' or 'fp32' as asked."""
    if choice != "auto":
        return choice
    if device.type == "cuda":
        return "bf16"
    return "fp32"


def autocast(device, precision):
    """The context the towers' forward pass runs in: bf16 autocast for 'bf16', plain fp32 otherwise. Losses
    and metrics are computed outside it, on outputs cast back to fp32 (`.float()`): autocast refuses
    F.binary_cross_entropy inside its region, and sums over many examples keep their precision."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def memory_format(precision):
    """channels-last (NHWC) with bf16, where the convolution kernels prefer it; the default (NCHW) with
    fp32."""
    return torch.channels_last if precision == "bf16" else torch.contiguous_format


def read_tt_agg_towers(path, device):
    """(checkpoint, [image tower, sound tower]) from a model.pt saved by tt_agg.py, its args checked, for
    retrieve.py; ValueError (or torch's own error) when it is not one: `why_unusable` says why in words."""
    with warnings.catch_warnings(action="ignore"):  # torch's warnings about some pickles: one line is enough
        checkpoint = torch.load(path, weights_only=True, map_location=device)  # tensors only, never code
    if checkpoint.get("script") != "tt_agg" or not isinstance(checkpoint.get("args"), dict):
        if checkpoint.get("script"):
            raise ValueError(f"made by {checkpoint['script']}.py")
        raise ValueError("it names no script")
    check_checkpoint_args(checkpoint)
    towers = []
    for channels, key in [(3, "image_tower"), (1, "sound_tower")]:
        net = tower(checkpoint["backbone"], channels, EMBEDDING_DIM)
        net.load_state_dict(checkpoint[key])
        if not all(t.isfinite().all() for t in net.state_dict().values()):
            raise ValueError("its towers hold NaN or infinite weights: the training diverged")
        towers.append(net)
    return checkpoint, towers


def check_checkpoint_args(checkpoint):
    """ValueError naming the first field of a tt_agg checkpoint that is not of the kind tt_agg.py saves."""
    args = checkpoint["args"]
    kinds = {"seed": (int, type(None)), "epochs": (int, type(None)), "data": (str, type(None))}
    for name, kind in kinds.items():
        value = args.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"its args.{name} is {value!r:.40}, not what tt_agg.py saves")
    if checkpoint.get("backbone") not in BACKBONES:
        raise ValueError(
            f"its backbone is {checkpoint.get('backbone')!r:.40}, not one of {sorted(BACKBONES)}"
        )


def why_unusable(e):
    """Why a checkpoint could not be used, in a few words, from the error loading it raised."""
    if "GLOBAL" in str(e):
        return "refused: it holds Python objects, and loading them could run code"
    if isinstance(e, ValueError):
        return str(e)
    return f"{type(e).__name__}: {e}".splitlines()[0].split(". ")[0][:100]  # torch's run to many lines
