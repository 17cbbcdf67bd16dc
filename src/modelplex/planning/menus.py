"""Slice menus and layout rules per device kind (which slice sizes a device may be cut into).

- GPU with MPS: a slice is a percentage of SMs from (20, 40, 50, 60, 80, 100); by default at most
  two slices per GPU (p and 100 - p), as the gpu-let reference does.
- GPU with MIG (A100, H100, H200): a slice is a number of compute sevenths from (1, 2, 3, 4, 7)
  (1g.10gb ... 7g.80gb); a layout is valid when the GPU model's placement table gives every
  instance a start of its own with no memory slice shared (planning/mig.py): 3g+3g+1g is refused.
- CPU: a slice is a number of cores, 1..N, summing to at most N.
"""

from __future__ import annotations

from collections.abc import Sequence

from modelplex.core.devices import DeviceKind, DeviceSpec
from modelplex.planning.mig import device_model, mig_placement

MPS_MENU_PCT: tuple[int, ...] = (20, 40, 50, 60, 80, 100)
MIG_MENU_SEVENTHS: tuple[int, ...] = (1, 2, 3, 4, 7)


def slice_menu(device: DeviceSpec) -> tuple[int, ...]:
    """Slice sizes a device may be cut into, ascending, in the kind's unit."""
    if device.kind is DeviceKind.GPU_MPS:
        return tuple(p for p in MPS_MENU_PCT if p <= device.capacity) or (device.capacity,)
    if device.kind is DeviceKind.GPU_MIG:
        return tuple(s for s in MIG_MENU_SEVENTHS if s <= device.capacity) or (device.capacity,)
    return tuple(range(1, device.capacity + 1))


def default_max_slices(device: DeviceSpec) -> int:
    """Most slices one device holds by default."""
    if device.kind is DeviceKind.GPU_MPS:
        return 2
    return device.capacity  # MIG: 7 instances of 1g; CPU: one core each


def layout_ok(device: DeviceSpec, sizes: Sequence[int], max_slices: int | None = None) -> bool:
    """Whether a device may be cut into slices of these sizes at the same time."""
    limit = default_max_slices(device) if max_slices is None else max_slices
    if len(sizes) > limit or sum(sizes) > device.capacity:
        return False
    menu = slice_menu(device)
    if any(s not in menu for s in sizes):
        return False
    if device.kind is DeviceKind.GPU_MIG:
        return mig_placement(device_model(device), sizes) is not None
    return True


def largest_fitting(device: DeviceSpec, sizes: Sequence[int], max_slices: int | None = None) -> int:
    """Largest menu size that can be added beside `sizes`; 0 when none fits."""
    for size in reversed(slice_menu(device)):
        if layout_ok(device, [*sizes, size], max_slices):
            return size
    return 0


def device_unit(kind: DeviceKind) -> str:
    """Name of a slice-size unit, for tables and errors."""
    return {DeviceKind.CPU: "cores", DeviceKind.GPU_MPS: "%", DeviceKind.GPU_MIG: "/7"}[kind]
