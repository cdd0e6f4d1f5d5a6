"""Image sizes: ours vs the seed's recipe, each on our base and on the slim-equivalent base.

Sizes are what the engine reports for the image (``docker images``: uncompressed, all layers,
the base included). The seed's image carries the wheelhouse it was fed (the seed, with a network,
would not), so that layer is measured too and a wheelhouse-free seed figure is reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .builds import Variant
from .common import image_size


@dataclass(frozen=True)
class SizeRow:
    """One image's size, its base's size, and the bytes of any layer that copied /wheels in."""

    variant: Variant
    size: int
    base_size: int
    wheelhouse: int

    @property
    def added(self) -> int:
        """Bytes on top of the base: what the Dockerfile itself decides."""
        return self.size - self.base_size

    @property
    def without_wheelhouse(self) -> int:
        """The size a networked build of the same recipe would have (no /wheels layer)."""
        return self.size - self.wheelhouse


def wheelhouse_bytes(cli: Any, ref: str) -> int:
    """Bytes of the image's own layers that ``COPY`` the wheelhouse into ``/wheels``.

    Only layers that end up in the final image count: a multi-stage build's builder stage
    copies it too, but that layer is not part of the shipped image.
    """
    return sum(int(h.get("Size", 0)) for h in cli.images.get(ref).history()
               if "COPY" in h.get("CreatedBy", "") and " in /wheels/" in h.get("CreatedBy", ""))


def measure(cli: Any, variants: list[Variant]) -> list[SizeRow]:
    """One :class:`SizeRow` per built variant."""
    return [SizeRow(v, image_size(cli, v.ref), image_size(cli, v.base_ref),
                    wheelhouse_bytes(cli, v.ref)) for v in variants]
