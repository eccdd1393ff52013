"""Check that a restored tree equals the generated dataset, so a fast but wrong run is caught.

Every file: present, regular, same size, and nothing extra. A deterministic sample of small files and
every big file: same SHA-256 as the source. The source hashes are computed once and shared by both
tools' checks.
"""

from __future__ import annotations

import hashlib
import os
import random
import stat
from dataclasses import dataclass, field
from pathlib import Path

from dataset import MANIFEST_NAME, Manifest, walk_files

__all__ = ["SourceHashes", "Verdict", "restored_root", "verify_restore"]

SAMPLE_SMALL = 300
BIG_THRESHOLD = 4 * 1024 * 1024


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class SourceHashes:
    """Lazily computed hashes of the sampled source files."""

    source: Path
    manifest: Manifest
    _cache: dict[str, str] = field(default_factory=dict)

    def sample(self) -> list[str]:
        """Relative paths to hash: a seeded sample of small files plus all big files."""
        small = sorted(p for p, size in self.manifest.files.items() if size < BIG_THRESHOLD)
        big = sorted(p for p, size in self.manifest.files.items() if size >= BIG_THRESHOLD)
        picked = random.Random(self.manifest.spec.seed).sample(small, min(SAMPLE_SMALL, len(small)))
        return sorted(picked) + big

    def get(self, rel: str) -> str:
        """SHA-256 of the source file ``rel``."""
        if rel not in self._cache:
            self._cache[rel] = sha256_file(self.source / rel)
        return self._cache[rel]


@dataclass(frozen=True)
class Verdict:
    """Result of comparing a restored tree with the source."""

    files_checked: int
    hashed: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when nothing differed."""
        return not self.problems

    def to_json(self) -> dict[str, object]:
        """JSON-able form (at most 20 problems listed)."""
        return {
            "ok": self.ok,
            "files_checked": self.files_checked,
            "hashed": self.hashed,
            "problems": list(self.problems[:20]),
            "problem_count": len(self.problems),
        }


def restored_root(target: Path, source: Path) -> Path:
    """Where the source tree lands in a restore target: both tools keep the absolute path."""
    return target / source.resolve().relative_to("/")


def verify_restore(restored: Path, hashes: SourceHashes) -> Verdict:
    """Compare ``restored`` (the restored copy of the dataset root) with the manifest and source hashes."""
    problems: list[str] = []
    expected = hashes.manifest.files
    seen: set[str] = set()
    if not restored.is_dir():
        return Verdict(files_checked=0, hashed=0, problems=(f"nothing restored at {restored}",))
    for dirpath, files in walk_files(restored):
        for name in files:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, restored)
            if rel == MANIFEST_NAME:
                continue  # the manifest is part of the backed-up tree but not of the dataset proper
            st = os.lstat(path)
            if rel not in expected:
                problems.append(f"unexpected file {rel}")
            elif not stat.S_ISREG(st.st_mode):
                problems.append(f"{rel}: not a regular file")
            elif st.st_size != expected[rel]:
                problems.append(f"{rel}: size {st.st_size}, expected {expected[rel]}")
            seen.add(rel)
    problems.extend(f"missing {rel}" for rel in sorted(set(expected) - seen))
    hashed = 0
    for rel in hashes.sample():
        if rel not in seen:
            continue  # already reported missing
        hashed += 1
        if sha256_file(restored / rel) != hashes.get(rel):
            problems.append(f"{rel}: content differs (sha256)")
    return Verdict(files_checked=len(seen), hashed=hashed, problems=tuple(problems))
