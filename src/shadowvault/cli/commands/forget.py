"""`shadowvault forget`: remove snapshots by a retention policy (restic's flags and decisions)."""

from __future__ import annotations

import argparse

from shadowvault.engine.retention import (
    ForgetOptions,
    ForgetResult,
    SnapshotFilter,
    apply_retention,
    forget_snapshots,
    restic_json,
)
from shadowvault.errors import UsageError
from shadowvault.repo.policy import Duration, KeepPolicy, Rules, parse_duration, parse_group_by

from ..app import App
from ..forget_render import EVERY, show_explain, show_forget
from ..phases import PhaseProgress
from .prune import add_prune_arguments, pack_size, prune_options

HELP = "remove snapshots according to a retention policy"
_COUNTS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
_WINDOWS = ("", "hourly", "daily", "weekly", "monthly", "yearly")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """restic's policy, filter and grouping flags, plus --set/--all-sets and --explain."""
    for name in _COUNTS:
        p.add_argument(
            f"--keep-{name}", type=int, default=0, metavar="N", help=f"keep the last N {name} snapshots"
        )
    for name in _WINDOWS:
        flag = f"--keep-within-{name}" if name else "--keep-within"
        p.add_argument(
            flag, default="", metavar="DURATION", help="e.g. 1y5m7d2h, relative to the newest snapshot"
        )
    p.add_argument(
        "--keep-tag", action="append", default=[], metavar="TAGLIST", help="keep snapshots with these tags"
    )
    p.add_argument("--host", action="append", default=[], help="only snapshots of this host")
    p.add_argument(
        "--tag", action="append", default=[], metavar="TAGLIST", help="only snapshots with these tags"
    )
    p.add_argument("--path", action="append", default=[], help="only snapshots including this path")
    p.add_argument(
        "-g", "--group-by", default="host,paths", help="host, paths and/or tags ('' for one group)"
    )
    p.add_argument(
        "--set", action="append", default=[], dest="sets", metavar="NAME", help="apply this set's retention"
    )
    p.add_argument("--all-sets", action="store_true", help="apply every set's retention to its snapshots")
    p.add_argument("-n", "--dry-run", action="store_true", help="only show what would be removed")
    p.add_argument("--prune", action="store_true", help="prune afterwards when snapshots were removed")
    p.add_argument(
        "--explain", action="store_true", help="show which of a year of future snapshots the policy keeps"
    )
    p.add_argument(
        "--explain-every", choices=sorted(EVERY), default="day", help="snapshot interval for --explain"
    )
    p.add_argument(
        "--restic-rules",
        choices=[r.value for r in Rules],
        default=Rules.RESTIC_0_16.value,
        help="decide as this restic release does (0.14 keeps no oldest snapshot for unfilled rules)",
    )
    add_prune_arguments(p)


def _taglists(values: list[str]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(t.strip() for t in v.split(",")) for v in values)


def _duration(flag: str, text: str) -> Duration:
    try:
        d = parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None
    if min(d.years, d.months, d.days, d.hours) < 0:
        raise UsageError(f"{flag} {text!r}: durations cannot be negative")
    return d


def policy_from_args(args: argparse.Namespace) -> KeepPolicy:
    """The policy the --keep-* flags describe."""
    counts = {name: getattr(args, f"keep_{name}") for name in _COUNTS}
    for name, n in counts.items():
        if n < -1:
            raise UsageError(f"--keep-{name} {n}: use a count >= 0, or -1 for unlimited")
    windows = {
        (f"within_{n}" if n else "within"): _duration(
            f"--keep-within{'-' + n if n else ''}", getattr(args, f"keep_within_{n}" if n else "keep_within")
        )
        for n in _WINDOWS
    }
    return KeepPolicy(
        last=counts["last"],
        hourly=counts["hourly"],
        daily=counts["daily"],
        weekly=counts["weekly"],
        monthly=counts["monthly"],
        yearly=counts["yearly"],
        within=windows["within"],
        within_hourly=windows["within_hourly"],
        within_daily=windows["within_daily"],
        within_weekly=windows["within_weekly"],
        within_monthly=windows["within_monthly"],
        within_yearly=windows["within_yearly"],
        tags=_taglists(args.keep_tag),
    )


def run(app: App, args: argparse.Namespace) -> int:
    """Forget by the flags' policy, or by each chosen set's retention."""
    policy = policy_from_args(args)
    rules = Rules(args.restic_rules)
    if args.explain:
        return show_explain(app, policy, args.explain_every, rules)
    try:
        group_by = parse_group_by(args.group_by)
    except ValueError as exc:
        raise UsageError(f"--group-by: {exc}") from None
    prune = prune_options(args, dry_run=args.dry_run) if args.prune else None
    repo = app.open_repo(pack_size=pack_size(args))
    progress = PhaseProgress(app)
    results: list[tuple[str, ForgetResult]] = []
    try:
        if args.sets or args.all_sets:
            if not policy.empty():
                raise UsageError(
                    "--set/--all-sets take the policy from the configuration: drop the --keep-* flags"
                )
            cfg = app.config()
            if cfg is None:
                raise UsageError("--set needs a configuration file: pass --config or set SHADOWVAULT_CONFIG")
            for name in cfg.set_names() if args.all_sets else args.sets:
                bset = cfg.effective(name).values
                done = apply_retention(
                    repo, bset, dry_run=args.dry_run, prune_after=prune, on_prune_progress=progress
                )
                if done is None:
                    app.info(f"set {name!r} has no retention rules: nothing forgotten")
                else:
                    results.append((name, done))
        else:
            flt = SnapshotFilter(tuple(args.host), _taglists(args.tag), tuple(args.path))
            opts = ForgetOptions(policy, group_by, flt, rules, args.dry_run, prune)
            results.append(("", forget_snapshots(repo, opts, on_prune_progress=progress)))
    finally:
        progress.close()
    if app.json:
        app.emit(restic_json([g for _, r in results for g in r.groups]))
    for name, r in results:
        show_forget(app, name, r, policy)
    return 0
