"""`shadowvault prune`: give back the space of data no snapshot references any more."""

from __future__ import annotations

import argparse
import re
from typing import Any

from shadowvault.errors import UsageError
from shadowvault.repo import DEFAULT_PACK_SIZE
from shadowvault.repo.maintenance import PruneOptions, PruneStats, prune

from ..app import App
from ..phases import PhaseProgress
from ..render import human_bytes

HELP = "remove unreferenced data from the repository"

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``500M`` / ``2G`` / ``1024`` → bytes (powers of 1024); UsageError when unreadable."""
    m = _SIZE.match(text)
    if m is None:
        raise UsageError(f"--max-repack-size {text!r} is not a size: use e.g. 500M or 2G")
    return int(float(m.group(1)) * 1024 ** "_kmgt".index((m.group(2) or "_").lower()))


def parse_percent(text: str) -> float:
    """``5%`` / ``5`` / ``unlimited`` → percent; UsageError when unreadable or out of range."""
    if text.strip().lower() == "unlimited":
        return 100.0
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        value = -1
    if not 0 <= value <= 100:
        raise UsageError(f"--max-unused {text!r} must be a percentage 0-100% or 'unlimited'")
    return value


def add_prune_arguments(p: argparse.ArgumentParser) -> None:
    """The options prune shares with ``forget --prune``."""
    p.add_argument(
        "--max-unused", default="5%", help="unused share of the repository to tolerate (default 5%%)"
    )
    p.add_argument("--max-repack-size", help="repack at most this much (e.g. 2G)")
    p.add_argument("--repack-small", action="store_true", help="also merge packs below 80%% of the pack size")
    p.add_argument(
        "--pack-size", type=int, default=None, help="target size in MiB of repacked packs (default 16)"
    )


def prune_options(args: argparse.Namespace, *, dry_run: bool) -> PruneOptions:
    """PruneOptions from the parsed flags."""
    return PruneOptions(
        max_unused_percent=parse_percent(args.max_unused),
        max_repack_bytes=parse_size(args.max_repack_size) if args.max_repack_size else None,
        repack_small=args.repack_small,
        dry_run=dry_run,
    )


def pack_size(args: argparse.Namespace) -> int:
    """Target pack size in bytes from --pack-size (MiB)."""
    if args.pack_size is None:
        return DEFAULT_PACK_SIZE
    if not 1 <= args.pack_size <= 128:
        raise UsageError("--pack-size must be between 1 and 128 MiB")
    return int(args.pack_size) * 1024 * 1024


def add_arguments(p: argparse.ArgumentParser) -> None:
    """--dry-run and the repack limits."""
    p.add_argument("-n", "--dry-run", action="store_true", help="only report what would be removed")
    add_prune_arguments(p)


def stats_json(s: PruneStats) -> dict[str, Any]:
    """The figures of a prune as one JSON object."""
    return {
        "message_type": "summary",
        "dry_run": None,
        "snapshots": s.snapshots,
        "used_blobs": s.used_blobs,
        "used_bytes": s.used_bytes,
        "unused_bytes": s.unused_bytes,
        "unused_bytes_after": s.unused_after,
        "packs_kept": s.kept_packs,
        "packs_deleted": len(s.deleted_packs),
        "packs_unindexed_deleted": len(s.unindexed_packs),
        "packs_repacked": len(s.repacked_packs),
        "repack_bytes": s.repack_bytes,
        "packs_written": len(s.new_packs),
        "index_files_written": s.written_index_files,
        "index_files_removed": len(s.removed_index_files),
        "stale_locks_removed": len(s.stale_locks_removed),
        "temp_files_removed": len(s.temp_files_removed),
        "freed_bytes": s.freed_bytes,
    }


def report(app: App, s: PruneStats, *, dry_run: bool) -> None:
    """Print the figures (text or one JSON summary)."""
    if app.json:
        app.emit({**stats_json(s), "dry_run": dry_run})
        return
    would = "would " if dry_run else ""
    app.print(f"used:   {s.used_blobs} blobs, {human_bytes(s.used_bytes)} in {s.snapshots} snapshots")
    app.print(f"unused: {human_bytes(s.unused_bytes)} in indexed packs")
    app.print(
        f"{would}delete {len(s.deleted_packs)} unused and {len(s.unindexed_packs)} unreferenced packs, "
        f"repack {len(s.repacked_packs)} packs ({human_bytes(s.repack_bytes)}), keep {s.kept_packs}"
    )
    app.print(f"unused after prune: {human_bytes(s.unused_after)}")
    app.print(f"{'would free' if dry_run else 'freed'} {human_bytes(max(s.freed_bytes, 0))}")
    if s.stale_locks_removed:
        app.print(f"removed {len(s.stale_locks_removed)} stale locks left by processes that no longer run")
    if s.temp_files_removed:
        app.print(f"removed {len(s.temp_files_removed)} temporary files left by interrupted writes")


def run(app: App, args: argparse.Namespace) -> int:
    """Prune under an exclusive lock (a dry run takes a shared one)."""
    options = prune_options(args, dry_run=args.dry_run)
    repo = app.open_repo(pack_size=pack_size(args))
    progress = PhaseProgress(app)
    try:
        with repo.lock(exclusive=not args.dry_run):
            stats = prune(repo, options, on_progress=progress)
    finally:
        progress.close()
    report(app, stats, dry_run=args.dry_run)
    return 0
