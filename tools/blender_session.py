"""Lalia installed into a throwaway Blender (the bpy module) as users install it: the built
extension zip through Blender's own extension install, in an empty user-resources folder, then an
empty scene. For the scripts in tools/ that drive the add-on headless."""
import os
import sys
import tempfile
from pathlib import Path


def install_lalia(zip_path, prefix: str = "lalia-blender-"):
    """-> (bpy, the enabled Lalia extension's module). Call before anything imports bpy: Blender
    reads BLENDER_USER_RESOURCES when it loads."""
    os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix=prefix)
    import bpy
    bpy.ops.extensions.package_install_files(filepath=str(Path(zip_path).resolve()), repo="user_default",
                                             enable_on_install=True)
    bpy.ops.wm.read_homefile(use_empty=True)
    return bpy, sys.modules["bl_ext.user_default.lalia"]
