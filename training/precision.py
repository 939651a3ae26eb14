"""The arithmetic policy of a training step, in one place: which device, which autocast
dtype (fp32 or bf16), channels_last or not, and the process-wide torch flags.

The choices come from measurements (benchmarks/step_settings.py, benchmarks/README.md);
train.py, the benchmarks and the app's future Train tab all ask here.
"""
from __future__ import annotations

import torch

def resolve_device(name: str) -> torch.device:
    """`auto`: CUDA, else MPS, else CPU; a named device that is absent is a one-line error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise SystemExit("--device mps: MPS is not available")
    return torch.device(name)


def cpu_bf16_instructions() -> str | None:
    """The bf16 dot-product instructions this CPU has: "amx" (Intel AMX tiles), "avx512_bf16" (e.g. AMD
    Zen 4), or None (bf16 is then emulated by oneDNN: measured 14.6x slower than fp32 on an EPYC
    without AVX-512). Asked of torch's own CPU probes, which read CPUID, not a vendor name."""
    for name, probe in (("amx", "_is_amx_tile_supported"), ("avx512_bf16", "_is_avx512_bf16_supported")):
        if getattr(torch.cpu, probe, lambda: False)():
            return name
    return None


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for training (None: plain fp32).

    auto picks bf16 where the hardware computes bf16 dot products (benchmarks/step_settings.py):
    CUDA GPUs with bf16, and CPUs with AMX (a 2-core Xeon: VGG19-BN ~1.5x, ResNet50 ~2.5x faster
    than fp32) or AVX512-BF16 (a 2-core Zen 4: VGG19-BN 1.8x, 2.0x with channels_last). Without
    either, oneDNN emulates bf16 and fp32 stays.
    """
    if precision == "fp32":
        return None
    supported = device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_bf16_supported())
    if precision == "bf16":
        if not supported:
            raise SystemExit(f"--precision bf16: not supported on {device}")
        return torch.bfloat16
    if device.type == "cuda" and supported:
        return torch.bfloat16
    return torch.bfloat16 if device.type == "cpu" and cpu_bf16_instructions() else None


def run_precision(requested: str, stored: str | None, device: torch.device) -> str:
    """The --precision to train with: a resumed run (`stored`) keeps its arithmetic under auto."""
    if requested != "auto" or stored is None:
        return requested
    if stored == "bf16" and device.type != "cpu" and resolve_precision("auto", device) is None:
        raise SystemExit(f"this run trained in bf16, which {device} does not support; "
                         f"resume with --precision fp32 to continue it in fp32")
    return stored


def use_channels_last(device: torch.device, autocast_dtype: torch.dtype | None) -> bool:
    """channels_last: faster on CUDA, and on CPU with bf16; slower in fp32 on CPU (benchmarks/step_settings.py)."""
    return device.type == "cuda" or autocast_dtype is not None


def set_torch_flags(device: torch.device, *, deterministic: bool = False) -> None:
    """Process-wide torch settings; called once by a command's main, never by library code.

    On CUDA: cuDNN autotuning (unless deterministic) and TF32 matmuls/convolutions.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
