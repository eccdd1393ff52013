"""The built-in exclusions: system and irrelevant files nobody wants restored.

Three kinds of rule live here, because they need different checks:

* **Patterns** (:func:`default_excludes`), in :mod:`shadowvault.fs.excludes` syntax:
  the contents of the Linux pseudo and volatile file systems (``/proc``, ``/sys``, ``/dev``,
  ``/run``) and of the temporary directories (``/tmp``, ``/var/tmp``) — the directories themselves
  stay, empty, as mount points — ``lost+found`` of every file system, swap files by
  their usual names, and the Windows system files that show up on dual-boot disks, mounted NTFS
  volumes and Samba shares (``pagefile.sys``, ``hiberfil.sys``, ``swapfile.sys``,
  ``System Volume Information``, ``$RECYCLE.BIN``, ``Thumbs.db``).
* **Content checks**: :func:`is_swap_file` recognises a swap area whatever its name, and
  :func:`is_cachedir_tagged` recognises a cache directory marked by the Cache Directory Tagging
  specification (``CACHEDIR.TAG`` whose first 43 bytes are its signature).
* **Runtime paths** (:func:`runtime_excluded_paths`): the repository itself, the client's own state
  directory and the active swap files listed in ``/proc/swaps`` — exact paths, not globs, because
  a path may contain glob characters.

Deliberately *not* excluded: ``*.tmp`` and ``~$*`` (applications keep real data under such names
while they run), ``desktop.ini`` and ``.DS_Store`` (folder settings people expect back after a
restore), ``/mnt`` and ``/media`` (often the data being backed up), and the cache directories of
particular applications (those that matter carry ``CACHEDIR.TAG``).
"""

from __future__ import annotations

import os
import stat

__all__ = [
    "CACHEDIR_TAG",
    "CACHEDIR_TAG_SIGNATURE",
    "DEFAULT_EXCLUDE_IF_PRESENT",
    "SWAP_SIGNATURES",
    "active_swap_files",
    "default_excludes",
    "is_cachedir_tagged",
    "is_swap_file",
    "runtime_excluded_paths",
]

CACHEDIR_TAG = "CACHEDIR.TAG"
# The 43-byte header required by the Cache Directory Tagging specification (MD5 of
# ".IsCacheDirectory"); a file of that name without it does not mark anything.
CACHEDIR_TAG_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"
DEFAULT_EXCLUDE_IF_PRESENT: tuple[str, ...] = (CACHEDIR_TAG,)

# mkswap writes one of these magics in the last 10 bytes of the first page of a swap area
# ("SWAP-SPACE" is the old version-0 format).
SWAP_SIGNATURES: tuple[bytes, ...] = (b"SWAPSPACE2", b"SWAP-SPACE")
_SIGNATURE_LEN = 10
# Page sizes in use on Linux; the magic sits at the end of whichever page size made the area.
_PAGE_SIZES = (4096, 16384, 65536)
# mkswap refuses areas smaller than ten pages, so smaller files need not be opened at all.
_MIN_SWAP_PAGES = 10

# "/proc/*" rather than "/proc": the directory itself is kept (empty), so a restored system has its
# mount points. Symlinks such as /var/run -> /run are left alone for the same reason.
_LINUX_SYSTEM = (
    "/proc/*",
    "/sys/*",
    "/dev/*",
    "/run/*",
    "/tmp/*",
    "/var/tmp/*",
    "lost+found/",
)
_SWAP_NAMES = (
    "/swap.img",
    "/swapfile",
    "/swap/swapfile",
    "/var/swap",
    "*.swap",
    "swapfile",
)
# Windows names are case-insensitive where they come from; list the spellings Windows writes.
_WINDOWS_SYSTEM = (
    "pagefile.sys",
    "hiberfil.sys",
    "swapfile.sys",
    "System Volume Information/",
    "$RECYCLE.BIN/",
    "$Recycle.Bin/",
    "Thumbs.db",
)


def default_excludes() -> list[str]:
    """The built-in exclude patterns (a new list each call, so callers may extend it)."""
    return [*_LINUX_SYSTEM, *_SWAP_NAMES, *_WINDOWS_SYSTEM]


def swap_signature_offsets(page_size: int | None = None) -> list[int]:
    """Offsets at which a swap magic may start: the end of the first page for each page size."""
    sizes = set(_PAGE_SIZES)
    sizes.add(page_size if page_size is not None else os.sysconf("SC_PAGE_SIZE"))
    return sorted(size - _SIGNATURE_LEN for size in sizes)


def has_swap_signature(first_bytes: bytes) -> bool:
    """True when ``first_bytes`` (the start of a file) carries a swap magic at a page end."""
    for offset in swap_signature_offsets():
        if first_bytes[offset : offset + _SIGNATURE_LEN] in SWAP_SIGNATURES:
            return True
    return False


def could_be_swap(size: int) -> bool:
    """Cheap pre-filter: a swap area is a whole number of pages and at least ten of them."""
    return size >= _MIN_SWAP_PAGES * 4096 and size % 4096 == 0


def is_swap_file(path: bytes | str) -> bool:
    """True when ``path`` is a regular file holding a swap area (judged by content, not name).

    Reads at most the first 64 KiB. Unreadable or vanished files are not swap (``False``); the
    caller meets the same error again when it tries to back the file up.
    """
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or not could_be_swap(st.st_size):
            return False
        # O_NOATIME: looking at a file must not change what the backup records about it.
        flags = os.O_RDONLY | getattr(os, "O_NOATIME", 0) | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(path, flags)
        except PermissionError:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            head = os.pread(fd, max(swap_signature_offsets()) + _SIGNATURE_LEN, 0)
        finally:
            os.close(fd)
    except OSError:
        return False
    return has_swap_signature(head)


def is_cachedir_tagged(dir: bytes | str) -> bool:
    """True when ``dir`` holds a regular file ``CACHEDIR.TAG`` that starts with the signature."""
    return has_marker(dir, CACHEDIR_TAG, CACHEDIR_TAG_SIGNATURE)


def has_marker(dir: bytes | str, name: str, header: bytes | None = None) -> bool:
    """True when ``dir`` contains the regular file ``name``, starting with ``header`` if given."""
    path = os.path.join(os.fsencode(dir), os.fsencode(name))
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            # The specification wants an ordinary file; a symlink could point anywhere.
            return False
        if header is None:
            return True
        with open(path, "rb") as f:
            return f.read(len(header)) == header
    except OSError:
        return False


def parse_marker(spec: str) -> tuple[str, bytes | None]:
    """Split an exclude-if-present entry into file name and required header.

    ``"NAME:HEADER"`` requires the file to start with HEADER (restic's syntax). A bare
    ``CACHEDIR.TAG`` implies the specification's signature; any other bare name needs only to
    exist.
    """
    name, sep, header = spec.partition(":")
    if sep:
        return name, os.fsencode(header)
    if name == CACHEDIR_TAG:
        return name, CACHEDIR_TAG_SIGNATURE
    return name, None


def active_swap_files(proc_swaps: str = "/proc/swaps") -> set[bytes]:
    """Paths of the swap *files* (not partitions) the kernel is using now, from ``/proc/swaps``."""
    try:
        with open(proc_swaps, "rb") as f:
            lines = f.read().splitlines()[1:]  # first line is the column header
    except OSError:
        return set()
    result: set[bytes] = set()
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[1] == b"file":
            # The kernel escapes blanks in the path as octal sequences like "\040".
            result.add(_unescape_octal(fields[0]))
    return result


def _unescape_octal(raw: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(raw):
        chunk = raw[i + 1 : i + 4]
        if raw[i : i + 1] == b"\\" and len(chunk) == 3 and all(48 <= c <= 55 for c in chunk):
            out.append(int(chunk, 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return bytes(out)


def runtime_excluded_paths(*paths: bytes | str | None) -> set[bytes]:
    """Exact paths to leave out of every backup: the given ones (repository, state dir) and the
    active swap files. ``None`` entries are skipped; each path is also added resolved, so a
    symlinked spelling cannot sneak the repository into its own backup."""
    result = set(active_swap_files())
    for p in paths:
        if p is None:
            continue
        raw = os.path.abspath(os.fsencode(p))
        result.add(raw)
        result.add(os.path.realpath(raw))
    return result
