"""Deterministic benchmark dataset: many small files plus a few large ones.

The tree is a pure function of a :class:`DatasetSpec` (seeded PRNG), so two machines, or two runs on one
machine, back up byte-identical data. The generator writes a manifest (spec + every file's relative path and
size) last; a directory whose manifest matches the requested spec is reused as it is, anything else is
deleted and generated again. That makes an interrupted generation harmless: no manifest, no reuse.

Content comes in two kinds, mixed about half and half:

* *random* - ``random.Random.randbytes``, incompressible, so compression must not waste time on it;
* *text* - lines drawn from a pool of random "sentences" made of a fixed vocabulary of words: it
  compresses about 4:1 with zstd, like source code, logs or documents. Drawing whole sentences (not
  words) keeps generation at several hundred MiB/s while chunk-sized pieces stay unique, so neither tool
  gets deduplication the data would not have in real life.

Directories nest randomly (every new directory picks an existing one as its parent), up to a few levels.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MANIFEST_NAME",
    "PROFILES",
    "DatasetSpec",
    "Manifest",
    "ensure_dataset",
    "generate",
    "remove_tree",
    "spec_for_profile",
    "spec_for_size",
    "walk_files",
]

MANIFEST_NAME = ".bench-manifest.json"
KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
# Bumped whenever the generator's output changes for the same spec, so old trees are regenerated.
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the generated tree depends on."""

    seed: int = 20261125
    small_files: int = 20_000
    small_min: int = 1 * KIB
    small_max: int = 64 * KIB
    big_files: int = 6
    big_size: int = 64 * MIB
    directories: int = 400
    max_depth: int = 4
    text_fraction: float = 0.5
    # A chain of this many nested directories (one small file in each) under ``deep/``: the deep-tree
    # case, where a recursive walk runs out of stack and paths approach PATH_MAX.
    deep_levels: int = 0
    generator_version: int = GENERATOR_VERSION

    def digest(self) -> str:
        """A short stable hash of the spec, used to name and recognise a generated tree."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def approx_bytes(self) -> int:
        """Expected total size (small files average the midpoint of their range)."""
        return self.small_files * (self.small_min + self.small_max) // 2 + self.big_files * self.big_size


@dataclass(frozen=True)
class Manifest:
    """What a generated tree holds: relative path → size, plus the spec it was made from."""

    spec: DatasetSpec
    files: dict[str, int]

    @property
    def total_bytes(self) -> int:
        """Sum of all file sizes."""
        return sum(self.files.values())

    def to_json(self) -> str:
        """Serialised form stored next to the data."""
        return json.dumps({"spec": dataclasses.asdict(self.spec), "files": self.files}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Inverse of :meth:`to_json`; raises ``ValueError``/``KeyError``/``TypeError`` on junk."""
        raw = json.loads(text)
        return cls(spec=DatasetSpec(**raw["spec"]), files={str(k): int(v) for k, v in raw["files"].items()})


def spec_for_size(size_gib: float, seed: int = DatasetSpec.seed) -> DatasetSpec:
    """The standard dataset scaled to about ``size_gib`` GiB.

    At 1 GiB: 20,000 small files of 1-64 KiB (~635 MiB) and six 64 MiB files (384 MiB). Smaller sizes
    scale the file counts; below 1 GiB the big files also shrink so a quick run stays quick, but there
    are always at least two of them (one random, one text).
    """
    if size_gib <= 0:
        raise ValueError("size must be positive")
    small = max(50, round(20_000 * size_gib))
    big = max(2, round(6 * size_gib))
    big_size = max(1 * MIB, min(64 * MIB, round(64 * size_gib) * MIB))
    directories = max(5, round(400 * size_gib))
    return DatasetSpec(
        seed=seed, small_files=small, big_files=big, big_size=big_size, directories=directories
    )


PROFILES = ("standard", "small-files", "deep-tree")


def spec_for_profile(profile: str, size_gib: float, seed: int = DatasetSpec.seed) -> DatasetSpec:
    """The dataset of a named profile.

    * ``standard``: :func:`spec_for_size` (small and big files, ~1 GiB at size 1);
    * ``small-files``: a server-like tree of 200,000 files of 0-2 KiB in 2,000 directories (scaled by
      ``size_gib``: 1 means the full 200,000), where the per-file cost dominates;
    * ``deep-tree``: 1,500 nested directories with a small file each, plus 2,000 small files beside
      them (a walk must not recurse once per level).
    """
    if profile == "standard":
        return spec_for_size(size_gib, seed)
    if size_gib <= 0:
        raise ValueError("size must be positive")
    if profile == "small-files":
        return DatasetSpec(
            seed=seed,
            small_files=max(100, round(200_000 * size_gib)),
            small_min=0,
            small_max=2 * KIB,
            big_files=0,
            directories=max(10, round(2_000 * size_gib)),
            max_depth=3,
        )
    if profile == "deep-tree":
        return DatasetSpec(
            seed=seed,
            small_files=2_000,
            small_min=0,
            small_max=4 * KIB,
            big_files=0,
            directories=20,
            deep_levels=1_500,
        )
    raise ValueError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")


class _TextSource:
    """Text-like bytes: lines picked from a pool of word sentences."""

    def __init__(self, rng: random.Random) -> None:
        letters = b"abcdefghijklmnopqrstuvwxyz"
        vocab = [bytes(rng.choices(letters, k=rng.randint(2, 11))) for _ in range(4000)]
        # Skewed word frequencies, as in natural text: a few words are very common.
        cum_weights = list(itertools.accumulate(1.0 / (rank + 10) for rank in range(len(vocab))))
        self._sentences: list[bytes] = []
        for _ in range(50_000):
            words = rng.choices(vocab, cum_weights=cum_weights, k=rng.randint(4, 18))
            self._sentences.append(b" ".join(words).capitalize() + b".\n")

    def make(self, rng: random.Random, size: int) -> bytes:
        """``size`` bytes of text (the last line is cut)."""
        # Average sentence is ~60 bytes; draw a few more than needed and trim.
        out = b"".join(rng.choices(self._sentences, k=size // 40 + 4))
        while len(out) < size:  # only for pathological draws of short sentences
            out += b"".join(rng.choices(self._sentences, k=size // 40 + 4))
        return out[:size]


def _directories(rng: random.Random, spec: DatasetSpec) -> list[str]:
    dirs: list[tuple[str, int]] = [("", 0)]
    while len(dirs) < spec.directories + 1:
        parent, depth = rng.choice(dirs)
        if depth >= spec.max_depth:
            continue
        name = f"d{len(dirs):04d}"
        dirs.append((f"{parent}/{name}" if parent else name, depth + 1))
    return [d for d, _ in dirs[1:]]


def _plan(spec: DatasetSpec) -> Iterator[tuple[str, int, bool, int]]:
    """(relative path, size, is_text, content seed) for every file, in generation order."""
    rng = random.Random(spec.seed)
    dirs = _directories(rng, spec)
    for i in range(spec.small_files):
        size = rng.randint(spec.small_min, spec.small_max)
        yield f"{rng.choice(dirs)}/f{i:05d}.dat", size, rng.random() < spec.text_fraction, rng.getrandbits(64)
    for i in range(spec.big_files):
        # Alternate so both kinds are present even with two big files.
        yield f"big/big{i:02d}.bin", spec.big_size, i % 2 == 1, rng.getrandbits(64)
    # Short names keep the deepest path (~1,500 x 2 bytes + the root) under PATH_MAX (4,096).
    deep = "deep"
    for i in range(spec.deep_levels):
        deep += f"/{i % 10}"
        yield f"{deep}/f", rng.randint(0, 512), True, rng.getrandbits(64)


def generate(root: Path, spec: DatasetSpec) -> Manifest:
    """Write the tree for ``spec`` into the empty-or-absent directory ``root`` and its manifest."""
    root.mkdir(parents=True, exist_ok=True)
    text = _TextSource(random.Random(spec.seed ^ 0x7E47))
    files: dict[str, int] = {}
    made_dirs: set[str] = set()
    for rel, size, is_text, seed in _plan(spec):
        parent = rel.rpartition("/")[0]
        if parent not in made_dirs:
            (root / parent).mkdir(parents=True, exist_ok=True)
            made_dirs.add(parent)
        rng = random.Random(seed)
        with open(root / rel, "wb") as f:
            if size <= 4 * MIB:
                f.write(text.make(rng, size) if is_text else rng.randbytes(size))
            else:
                # Big files in 4 MiB pieces to keep memory flat.
                left = size
                while left:
                    n = min(left, 4 * MIB)
                    f.write(text.make(rng, n) if is_text else rng.randbytes(n))
                    left -= n
        files[rel] = size
    manifest = Manifest(spec=spec, files=files)
    tmp = root / (MANIFEST_NAME + ".tmp")
    tmp.write_text(manifest.to_json())
    # Written last and atomically: its presence means the tree is complete.
    os.replace(tmp, root / MANIFEST_NAME)
    return manifest


def walk_files(root: Path | str) -> Iterator[tuple[str, list[str]]]:
    """(directory path, file names) for every directory under ``root``, iteratively.

    ``os.walk`` recurses once per level (Python 3.11) and fails on the deep-tree profile.
    """
    stack = [os.fspath(root)]
    while stack:
        top = stack.pop()
        files: list[str] = []
        with os.scandir(top) as it:
            for e in it:
                (stack if e.is_dir(follow_symlinks=False) else files).append(
                    e.path if e.is_dir(follow_symlinks=False) else e.name
                )
        yield top, files


def remove_tree(path: Path) -> None:
    """Delete ``path`` and everything below it (``rm -rf``: ``shutil.rmtree`` recurses per level)."""
    subprocess.run(["rm", "-rf", "--", os.fspath(path)], check=True)


def load_manifest(root: Path) -> Manifest | None:
    """The manifest of a complete tree at ``root``, or None."""
    try:
        return Manifest.from_json((root / MANIFEST_NAME).read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ensure_dataset(root: Path, spec: DatasetSpec) -> tuple[Manifest, bool]:
    """Reuse the tree at ``root`` if it was made from ``spec`` and is intact, else regenerate it.

    Returns the manifest and whether it was (re)generated. "Intact" means every listed file exists
    with its listed size and nothing else is there; contents are not re-hashed (that is the job of
    the restore verification, which compares against the source).
    """
    manifest = load_manifest(root)
    if manifest is not None and manifest.spec == spec and _sizes_match(root, manifest):
        return manifest, False
    if root.exists():
        remove_tree(root)
    return generate(root, spec), True


def _sizes_match(root: Path, manifest: Manifest) -> bool:
    seen = 0
    for dirpath, filenames in walk_files(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if rel == MANIFEST_NAME:
                continue
            if manifest.files.get(rel) != os.lstat(path).st_size:
                return False
            seen += 1
    return seen == len(manifest.files)
