"""Text and JSON output of `forget` (kept snapshots with their reasons) and `forget --explain`."""

from __future__ import annotations

from datetime import datetime

from shadowvault.engine.retention import ForgetResult, explain_policy
from shadowvault.errors import UsageError
from shadowvault.repo.policy import KeepPolicy, Rules

from .app import App
from .commands.prune import report

EVERY = {"hour": 3600, "day": 86400, "week": 7 * 86400}
"""Snapshot intervals ``--explain-every`` offers."""


def show_forget(app: App, name: str, r: ForgetResult, policy: KeepPolicy) -> None:
    """Refused groups as warnings; kept and removed snapshots per group; the prune figures."""
    for group in r.refused:
        app.warn(f"the policy keeps no snapshot of the group {group}: a real run refuses to forget it")
    if app.json:
        if r.prune is not None:
            report(app, r.prune, dry_run=r.dry_run)
        return
    if name:
        app.print(f"set {name}:")
    elif not policy.empty():
        app.info(f"Applying policy: {policy.describe()}")
    for g in r.groups:
        app.print(f"snapshots of {g.key.describe()}: keep {len(g.keep)}, remove {len(g.remove)}")
        reasons = {k.snapshot_id: k.matches for k in g.reasons}
        for sid, s in g.keep:
            when = datetime.fromtimestamp(s.time / 1e9).strftime("%Y-%m-%d %H:%M:%S")
            app.print(f"  keep   {sid[:8]}  {when}  {', '.join(reasons.get(sid, ()))}")
        for sid, s in g.remove:
            when = datetime.fromtimestamp(s.time / 1e9).strftime("%Y-%m-%d %H:%M:%S")
            app.print(f"  remove {sid[:8]}  {when}")
    verb = "would remove" if r.dry_run else "removed"
    app.print(f"{verb} {len(r.removed)} snapshots")
    if r.prune is not None:
        report(app, r.prune, dry_run=r.dry_run)


def show_explain(app: App, policy: KeepPolicy, every: str, rules: Rules) -> int:
    """Which of a year of snapshots, one per ``every``, the policy keeps."""
    if policy.empty():
        raise UsageError("--explain needs a policy: give --keep-* flags")
    g = explain_policy(policy, every_s=EVERY[every], rules=rules)
    total = len(g.keep) + len(g.remove)
    if app.json:
        app.emit(
            {
                "policy": policy.describe(),
                "snapshots": total,
                "keep": [
                    {
                        "time": datetime.fromtimestamp(s.time / 1e9).astimezone().isoformat(),
                        "matches": list(r.matches),
                    }
                    for (_, s), r in zip(g.keep, g.reasons, strict=True)
                ],
            }
        )
        return 0
    app.print(f"{policy.describe()}")
    app.print(f"one snapshot every {every} for a year ({total} snapshots): {len(g.keep)} kept")
    for (_, s), r in zip(g.keep, g.reasons, strict=True):
        when = datetime.fromtimestamp(s.time / 1e9).strftime("%Y-%m-%d %H:%M %a")
        app.print(f"  {when}  {', '.join(r.matches)}")
    return 0
