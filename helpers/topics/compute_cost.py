"""What a training run costs: FLOPs counted from the model, wall time measured, energy estimated."""

from __future__ import annotations

from helpers.topics import large_models

JOULES_PER_KWH = 3.6e6
forward_flops = large_models.forward_flops  # one image's forward pass: 2 FLOPs per multiply-add


def training_flops(model, images_seen: float) -> float:
    """FLOPs to train on ``images_seen`` images (epochs × training images): 3 × forward per image."""
    if images_seen < 0:
        raise ValueError(f"images_seen must not be negative, got {images_seen}")
    return 3.0 * forward_flops(model) * float(images_seen)


def energy_kwh(seconds: float, watts: float, pue: float = 1.0) -> float:
    """Energy of ``seconds`` at ``watts`` average power, times the facility overhead ``pue``."""
    if seconds < 0 or watts <= 0 or pue < 1:
        raise ValueError(f"need seconds >= 0, watts > 0 and pue >= 1; got {seconds}, {watts}, {pue}")
    return seconds * watts * pue / JOULES_PER_KWH


def large_model_cost(
    n_params: float, n_tokens: float, peak_flops: float, utilization: float, watts: float, pue: float
) -> dict:
    """6·N·D FLOPs, accelerator-hours and energy (MWh) to train a dense model at ``utilization`` of ``peak_flops``."""
    flops = large_models.training_flops(n_params, n_tokens)
    if not (peak_flops > 0 and 0 < utilization <= 1):
        raise ValueError(f"need peak_flops > 0 and 0 < utilization <= 1; got {peak_flops}, {utilization}")
    seconds = flops / (peak_flops * utilization)  # accelerator-seconds
    return {"flops": flops, "accelerator_hours": seconds / 3600, "energy_mwh": energy_kwh(seconds, watts, pue) / 1000}
