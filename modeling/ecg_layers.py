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



# ----------------------------------------------------------------------------------------------------------------------
# Transformer blocks (C-MELT's ECG encoder, fusion and MEM decoder; reusable by any ViT-style family)


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention with separate Q, K, V and output projections (BERT / ViT layout).

    `key_padding_mask` (B, Lk) is True (or 1) on the keys that may be attended, False on padding.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float, key_dim: int | None = None, bias: bool = True):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads}).")
        key_dim = dim if key_dim is None else key_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.query = nn.Linear(dim, dim, bias=bias)
        self.key = nn.Linear(key_dim, dim, bias=bias)
        self.value = nn.Linear(key_dim, dim, bias=bias)
        self.output = nn.Linear(dim, dim, bias=bias)

    def _heads(self, tokens):
        batch, length, dim = tokens.shape
        return tokens.view(batch, length, self.num_heads, dim // self.num_heads).transpose(1, 2)  # (B, h, L, d)

    def forward(self, queries, keys=None, key_padding_mask=None):
        keys = queries if keys is None else keys
        attend = None if key_padding_mask is None else key_padding_mask.bool()[:, None, None, :]  # (B, 1, 1, Lk)
        attended = F.scaled_dot_product_attention(
            self._heads(self.query(queries)), self._heads(self.key(keys)), self._heads(self.value(keys)),
            attn_mask=attend, dropout_p=self.dropout if self.training else 0.0,
        )  # (B, h, Lq, d)
        return self.output(attended.transpose(1, 2).flatten(2))  # (B, Lq, D)


class TransformerLayer(GradientCheckpointingLayer):
    """Self-attention, optionally cross-attention to a second sequence, then an MLP; each a residual branch.

    `norm_first=False`: post-LN, x = LN(x + dropout(f(x))) (BERT, wav2vec2, METER's BertCrossLayer);
    `norm_first=True`: pre-LN, x = x + dropout(f(LN(x))) (ViT, MAE's decoder blocks).
    """

    def __init__(self, dim: int, num_heads: int, intermediate_size: int, dropout: float = 0.0,
                 attention_dropout: float = 0.0, activation_dropout: float = 0.0, cross_attention: bool = False,
                 norm_first: bool = False, layer_norm_eps: float = 1e-5):
        super().__init__()
        self.norm_first = norm_first
        self.self_attention = MultiHeadAttention(dim, num_heads, attention_dropout)
        self.self_attention_norm = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.cross_attention = MultiHeadAttention(dim, num_heads, attention_dropout) if cross_attention else None
        self.cross_attention_norm = nn.LayerNorm(dim, eps=layer_norm_eps) if cross_attention else None
        self.mlp = nn.Sequential(
            nn.Linear(dim, intermediate_size), nn.GELU(), nn.Dropout(activation_dropout),
            nn.Linear(intermediate_size, dim),
        )
        self.mlp_norm = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def _residual(self, hidden, norm, branch):
        if self.norm_first:
            return hidden + self.dropout(branch(norm(hidden)))
        return norm(hidden + self.dropout(branch(hidden)))

    def forward(self, hidden, attention_mask=None, context=None, context_mask=None):
        # hidden (B, L, D), attention_mask (B, L); context (B, Lc, D), context_mask (B, Lc): 1 = attend
        hidden = self._residual(
            hidden, self.self_attention_norm, lambda x: self.self_attention(x, key_padding_mask=attention_mask)
        )
        if self.cross_attention is not None:
            hidden = self._residual(
                hidden, self.cross_attention_norm,
                lambda x: self.cross_attention(x, context, key_padding_mask=context_mask),
            )
        return self._residual(hidden, self.mlp_norm, self.mlp)


def sinusoidal_position_embedding(num_positions: int, dim: int, device=None, dtype=None) -> torch.Tensor:
    """Fixed 1D sine-cosine positions (Transformer; MAE's `get_1d_sincos_pos_embed`): (num_positions, dim),
    first half sin(p * w_i), second half cos(p * w_i), w_i = 10000^(-2i / dim)."""
    if dim % 2 != 0:
        raise ValueError(f"dim must be even for sine-cosine positions, got {dim}.")
    frequencies = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64, device=device) / (dim / 2))  # (dim/2,)
    angles = torch.arange(num_positions, dtype=torch.float64, device=device)[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1).to(dtype or torch.get_default_dtype())


__all__ = [
    "AttentionPool",
    "MultiHeadAttention",
    "ResNetEncoder",
    "ResidualBlock",
    "SelfAttentionBlock",
    "TransformerLayer",
    "conv_output_length",
    "sinusoidal_position_embedding",
]
