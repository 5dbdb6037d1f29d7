"""Neural building blocks shared by the model families: 1D/2D residual CNN encoders, pre-norm self-attention blocks
and the class-token attention pooler (MERL's AttentionPool2d, in 1D).

Flat, depending only on torch and transformers: copied next to every saved checkpoint whose files import it.
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer


def conv_output_length(length: int, kernel_size: int, stride: int, padding: int) -> int:
    return (length + 2 * padding - kernel_size) // stride + 1


class ResidualBlock(GradientCheckpointingLayer):
    """ResNet basic block (two 3-wide convolutions + batch norm) in 1 or 2 dimensions."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        norm = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
        self.conv1 = conv(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm1 = norm(out_channels)
        self.conv2 = conv(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.norm2 = norm(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(conv(in_channels, out_channels, 1, stride=stride, bias=False), norm(out_channels))

    def forward(self, hidden):
        residual = self.shortcut(hidden)
        hidden = F.relu(self.norm1(self.conv1(hidden)))
        hidden = self.norm2(self.conv2(hidden))
        return F.relu(hidden + residual)


class ResNetEncoder(nn.Module):
    """Stem convolution + stages of residual blocks; the first stage keeps the resolution, later ones halve it.

    No max-pool (MERL's resnet1d), so a 5000-sample ECG becomes 313 time tokens with the ResNet-34 layout.
    """

    def __init__(self, dims, in_channels, stem_channels, stem_kernel_size, stem_stride, channels, blocks_per_stage):
        super().__init__()
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        norm = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
        self.stem = nn.Sequential(
            conv(in_channels, stem_channels, stem_kernel_size, stride=stem_stride, padding=stem_kernel_size // 2, bias=False),
            norm(stem_channels),
            nn.ReLU(inplace=True),
        )
        blocks, width = [], stem_channels
        for stage, (out_channels, num_blocks) in enumerate(zip(channels, blocks_per_stage)):
            for index in range(num_blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(ResidualBlock(dims, width, out_channels, stride))
                width = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.stem_geometry = (stem_kernel_size, stem_stride, stem_kernel_size // 2)
        self.num_downsampling_stages = max(len(channels) - 1, 0)

    def output_length(self, length: int) -> int:
        length = conv_output_length(length, *self.stem_geometry)
        for _ in range(self.num_downsampling_stages):
            length = conv_output_length(length, 3, 2, 1)
        return length

    def forward(self, hidden):
        hidden = self.stem(hidden)
        for block in self.blocks:
            hidden = block(hidden)
        return hidden


# ----------------------------------------------------------------------------------------------------------------------
# Attention


class SelfAttentionBlock(GradientCheckpointingLayer):
    """z = x + att(LN(x)) (pre-norm residual self-attention)."""

    def __init__(self, dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)

    def forward(self, tokens):
        normed = self.norm(tokens)
        attended, _ = self.attention(normed, normed, normed, need_weights=False)
        return tokens + attended


class AttentionPool(nn.Module):
    """A learnable class token attends over the tokens (with learned positions) and becomes the pooled embedding."""

    def __init__(self, dim: int, num_tokens: int, num_heads: int):
        super().__init__()
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position_embedding = nn.Parameter(torch.zeros(1, num_tokens + 1, dim))
        self.attention = nn.MultiheadAttention(dim, num_heads, batch_first=True)

    def forward(self, tokens):
        class_token = self.class_token.expand(tokens.shape[0], -1, -1)
        sequence = torch.cat([class_token, tokens], dim=1) + self.position_embedding  # (B, 1 + 401, D)
        pooled, _ = self.attention(sequence[:, :1], sequence, sequence, need_weights=False)  # (B, 1, D)
        return pooled[:, 0]


__all__ = ["AttentionPool", "ResNetEncoder", "ResidualBlock", "SelfAttentionBlock", "conv_output_length"]
