"""Imports every mapping module, so :data:`protoedit.export.mapping.MAPPINGS` is complete."""

from protoedit.export import (
    layers_activation,
    layers_core,
    layers_fork,
    layers_recurrent,
    layers_shape,
)

__all__ = ["layers_activation", "layers_core", "layers_fork", "layers_recurrent", "layers_shape"]
