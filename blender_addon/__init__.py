"""Lalia: Generate from audio. A thin Blender layer over `model_core` (bundled beside it)."""
from . import editing, operators, panel, properties, scene_lines

_modules = (properties, operators, editing, scene_lines, panel)


def register():
    for m in _modules:
        m.register()


def unregister():
    for m in reversed(_modules):
        m.unregister()
