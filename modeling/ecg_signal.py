"""Signal facts and transforms shared by every model family: the canonical lead order and the STFT magnitude.

Flat, depending only on torch: copied next to every saved checkpoint whose files import it.
"""

import torch
import torch.nn.functional as F

CANONICAL_LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def stft_frame_count(num_samples: int, win_length: int, hop_length: int) -> int:
    """Frames of `scipy.signal.stft(boundary="zeros", padded=True)`: 81 for 5000 samples, window 125, hop 63."""
    padded = num_samples + 2 * (win_length // 2)
    padded += (-(padded - win_length)) % hop_length
    return (padded - win_length) // hop_length + 1


def stft_magnitude(signal: torch.Tensor, window: torch.Tensor, n_fft: int, hop_length: int, log: bool = False):
    """|STFT| of each lead, equal to `abs(scipy.signal.stft(x, nperseg=len(window), noverlap=len(window) - hop))`.

    scipy's defaults extend the signal with len(window)//2 zeros at both ends, zero-pad the end to a whole number of
    hops and scale by 1 / sum(window) ("spectrum" scaling); torch.stft(center=False) on that padded signal matches.
    """
    batch, leads, length = signal.shape
    win_length = window.shape[0]
    half = win_length // 2
    end_pad = (-(length + 2 * half - win_length)) % hop_length
    flat = F.pad(signal.reshape(batch * leads, length).float(), (half, half + end_pad))  # (B*12, 5000 + 165)
    with torch.autocast(device_type=signal.device.type, enabled=False):
        spec = torch.stft(
            flat, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window.float(),
            center=False, return_complex=True,
        )  # (B*12, 63, 81)
    magnitude = spec.abs() / window.sum()
    if log:
        magnitude = torch.log1p(magnitude)
    return magnitude.reshape(batch, leads, *magnitude.shape[-2:])  # (B, 12, 63, 81)


__all__ = ["CANONICAL_LEADS", "stft_frame_count", "stft_magnitude"]
