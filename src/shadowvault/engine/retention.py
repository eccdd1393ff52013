"""Forget: pick snapshots, decide per group with a retention policy, delete what it gives up.

``forget_snapshots`` is what ``shadowvault forget`` runs; ``apply_retention`` applies one backup
set's ``retention`` from the configuration (``forget --set`` and the daemon's forget-after-backup
both call it). The decisions themselves are ``repo.policy``'s, identical to restic's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shadowvault.config import BackupSet
from shadowvault.errors import UsageError
from shadowvault.repo import Repository, Snapshot
from shadowvault.repo.maintenance import PruneOptions, PruneProgress, PruneStats, forget, prune
from shadowvault.repo.policy import GroupDecision, KeepPolicy, Rules, decide_group, group_snapshots

DEFAULT_GROUP_BY = frozenset({"host", "paths"})


@dataclass(frozen=True)
class SnapshotFilter:
    """Which snapshots forget considers: all when every field is empty (restic's filter flags)."""

    hosts: tuple[str, ...] = ()
    tags: tuple[tuple[str, ...], ...] = ()
    """A snapshot matches when it carries every tag of at least one list."""
    paths: tuple[str, ...] = ()
    """A snapshot matches when it has all of these paths."""

    def matches(self, snap: Snapshot) -> bool:
        """True when the snapshot passes every filter."""
        if self.hosts and snap.hostname not in self.hosts:
            return False
        if self.tags and not any(all(t in snap.tags for t in wanted) for wanted in self.tags):
            return False
        return all(p in snap.paths for p in self.paths)


@dataclass(frozen=True)
class ForgetOptions:
    """One forget run."""

    policy: KeepPolicy
    group_by: frozenset[str] = DEFAULT_GROUP_BY
    filter: SnapshotFilter = SnapshotFilter()
    rules: Rules = Rules.RESTIC_0_16
    dry_run: bool = False
    prune: PruneOptions | None = None
    """Prune afterwards (under the same lock) when snapshots were removed."""


@dataclass
class ForgetResult:
    """What forget decided (and did, unless ``dry_run``)."""

    groups: list[GroupDecision]
    removed: list[str]
    dry_run: bool
    refused: list[str] = field(default_factory=list)
    """Groups whose every snapshot the policy would remove: left alone (a dry run only reports them)."""
    prune: PruneStats | None = None


def policy_for_set(bset: BackupSet) -> KeepPolicy:
    """The set's ``retention`` table as a policy (empty when the set has none)."""
    r = bset.retention
    return KeepPolicy(
        last=r.keep_last,
        daily=r.keep_daily,
        weekly=r.keep_weekly,
        monthly=r.keep_monthly,
        yearly=r.keep_yearly,
    )


def plan_forget(snapshots: Sequence[tuple[str, Snapshot]], options: ForgetOptions) -> list[GroupDecision]:
    """Filter, group and decide; groups in a stable order."""
    chosen = [(sid, s) for sid, s in snapshots if options.filter.matches(s)]
    groups = group_snapshots(chosen, options.group_by)
    ordered = sorted(groups.items(), key=lambda kv: (kv[0].hostname, kv[0].paths or (), kv[0].tags or ()))
    return [decide_group(k, members, options.policy, rules=options.rules) for k, members in ordered]


def forget_snapshots(
    repo: Repository,
    options: ForgetOptions,
    *,
    locked: bool = False,
    on_prune_progress: PruneProgress | None = None,
) -> ForgetResult:
    """Run forget (and prune if asked). Takes the exclusive lock unless ``locked`` (caller holds it).

    An empty policy is a usage error, as in restic: forgetting without a rule is a mistake.
    A group the policy would empty entirely is never emptied (restic refuses likewise).
    """
    if options.policy.empty():
        raise UsageError(
            "no policy was given: name at least one --keep-* rule, --keep-tag, or a --set with retention"
        )
    if locked:
        return _forget_locked(repo, options, on_prune_progress)
    # A dry run only reads: a shared lock lets backups go on meanwhile.
    with repo.lock(exclusive=not options.dry_run):
        return _forget_locked(repo, options, on_prune_progress)


def _forget_locked(
    repo: Repository, options: ForgetOptions, on_prune_progress: PruneProgress | None
) -> ForgetResult:
    groups = plan_forget(repo.list_snapshots(), options)
    refused = [g.key.describe() for g in groups if not g.keep and g.remove]
    if refused and not options.dry_run:
        raise UsageError(
            f"refusing to delete every snapshot of the group {refused[0]}: the policy keeps none of "
            "them; add a rule that keeps one (e.g. --keep-last 1)"
        )
    removed = [sid for g in groups for sid, _ in g.remove]
    result = ForgetResult(groups, removed, options.dry_run, refused)
    if not options.dry_run:
        forget(repo, removed)
    if options.prune is not None and removed:
        opts = options.prune
        if options.dry_run and not opts.dry_run:
            opts = PruneOptions(
                opts.max_unused_percent, opts.max_repack_bytes, opts.repack_small, dry_run=True
            )
        result.prune = prune(repo, opts, on_progress=on_prune_progress, assume_forgotten=set(removed))
    return result


def apply_retention(
    repo: Repository,
    bset: BackupSet,
    *,
    dry_run: bool = False,
    prune_after: PruneOptions | None = None,
    locked: bool = False,
    on_prune_progress: PruneProgress | None = None,
) -> ForgetResult | None:
    """Apply one backup set's ``retention`` to that set's snapshots; None when it has none.

    A named set's snapshots carry its name as a tag (engine.sets), so only those are
    considered, grouped by host and paths. The daemon calls this after a set's backup.
    """
    policy = policy_for_set(bset)
    if policy.empty():
        return None
    flt = SnapshotFilter(tags=((bset.name,),)) if bset.name else SnapshotFilter()
    options = ForgetOptions(policy=policy, filter=flt, dry_run=dry_run, prune=prune_after)
    return forget_snapshots(repo, options, locked=locked, on_prune_progress=on_prune_progress)


def explain_policy(
    policy: KeepPolicy,
    *,
    every_s: int,
    start_ns: int | None = None,
    days: int = 365,
    rules: Rules = Rules.RESTIC_0_16,
) -> GroupDecision:
    """Which of a year of snapshots (one every ``every_s`` seconds from now) the policy keeps.

    Times carry this machine's UTC offset, as a backup here would; ``now`` is placed after the
    last one so the newest counts as the present.
    """
    start = time.time_ns() if start_ns is None else start_ns
    count = max(1, days * 86400 // every_s)
    snaps = [
        (f"{i:06d}", Snapshot(time=start + i * every_s * 1_000_000_000, tree=b"\0" * 32, paths=["/"]))
        for i in range(count)
    ]
    end = snaps[-1][1].time + 1
    (group,) = group_snapshots(snaps, frozenset()).items()
    return decide_group(group[0], group[1], policy, rules=rules, now_ns=end)


def restic_json(groups: Sequence[GroupDecision]) -> list[dict[str, Any]]:
    """Groups in the shape of ``restic forget --json``: scripts written for restic read it as is."""

    def snap_doc(sid: str, s: Snapshot) -> dict[str, Any]:
        return {**s.to_dict(), "id": sid, "short_id": sid[:8]}

    out = []
    for g in groups:
        by_id = dict(g.keep)
        out.append(
            {
                "tags": list(g.key.tags) if g.key.tags is not None else None,
                "host": g.key.hostname,
                "paths": list(g.key.paths) if g.key.paths is not None else None,
                "keep": [snap_doc(sid, s) for sid, s in g.keep] or None,
                "remove": [snap_doc(sid, s) for sid, s in g.remove] or None,
                "reasons": [
                    {
                        "snapshot": snap_doc(r.snapshot_id, by_id[r.snapshot_id]),
                        "matches": list(r.matches),
                        "counters": dict(r.counters),
                    }
                    for r in g.reasons
                ]
                or None,
            }
        )
    return out
