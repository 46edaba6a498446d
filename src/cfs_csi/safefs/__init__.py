"""Acting on directories that hostile code can write to, without ever following its symbolic links.

Every path the driver creates, renames, deletes, chmods or mounts onto below a directory that a pod can write
(a share, the kubelet's pods directory) is reached here: from an open handle of a trusted root, one component
at a time, with ``O_NOFOLLOW``. Resolving a string and then acting on the string would let a pod swap a
component for a symlink in between.
"""

from cfs_csi.safefs.beneath import UnsafePath, components, make_dirs, open_dir
from cfs_csi.safefs.entries import (
    entry_mode,
    open_parent,
    read_file,
    remove_file,
    remove_tree,
    rename_directory,
    write_file,
)

__all__ = [
    "UnsafePath",
    "components",
    "entry_mode",
    "make_dirs",
    "open_dir",
    "open_parent",
    "read_file",
    "remove_file",
    "remove_tree",
    "rename_directory",
    "write_file",
]
