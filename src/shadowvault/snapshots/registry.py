"""Which snapshot providers exist, in the order a session tries them.

Built-ins and plugins are registered the same way: a name and a factory that
builds the provider from ``ProviderSettings``. Plugins declare the factory as
an entry point in the group ``shadowvault.snapshot_providers``, e.g.::

    [project.entry-points."shadowvault.snapshot_providers"]
    stratis = "shadowvault_stratis:make_provider"

Volume snapshots come first (one moment for the whole volume), per-file
reflinks last; plugins follow the built-ins. A plugin that fails to load is
reported and skipped, never fatal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

from shadowvault.snapshots.btrfs import BtrfsProvider
from shadowvault.snapshots.commands import Runner, run_command
from shadowvault.snapshots.interface import SnapshotProvider
from shadowvault.snapshots.lvm import DEFAULT_MOUNT_BASE, DEFAULT_SNAPSHOT_SIZE, LvmProvider
from shadowvault.snapshots.reflink import ReflinkProvider
from shadowvault.snapshots.zfs import ZfsProvider

__all__ = ["ENTRY_POINT_GROUP", "ProviderFactory", "ProviderSettings", "builtin_factories", "load_providers"]

ENTRY_POINT_GROUP = "shadowvault.snapshot_providers"


@dataclass(frozen=True)
class ProviderSettings:
    """Everything a provider factory may use; plugins ignore what they do not need."""

    runner: Runner = field(default=run_command)
    lvm_snapshot_size: str = DEFAULT_SNAPSHOT_SIZE
    mount_base: Path = DEFAULT_MOUNT_BASE


ProviderFactory = Callable[[ProviderSettings], SnapshotProvider]


def _btrfs(settings: ProviderSettings) -> SnapshotProvider:
    return BtrfsProvider(settings.runner)


def _zfs(settings: ProviderSettings) -> SnapshotProvider:
    return ZfsProvider(settings.runner)


def _lvm(settings: ProviderSettings) -> SnapshotProvider:
    return LvmProvider(
        settings.runner, snapshot_size=settings.lvm_snapshot_size, mount_base=settings.mount_base
    )


def _reflink(settings: ProviderSettings) -> SnapshotProvider:
    return ReflinkProvider()


def builtin_factories() -> list[tuple[str, ProviderFactory]]:
    """The built-in providers in preference order."""
    return [("btrfs", _btrfs), ("zfs", _zfs), ("lvm", _lvm), ("reflink", _reflink)]


def plugin_factories(on_message: Callable[[str], None] | None = None) -> list[tuple[str, ProviderFactory]]:
    """Factories from installed plugins; broken entry points are reported and skipped."""
    found: list[tuple[str, ProviderFactory]] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            factory = ep.load()
        except Exception as exc:  # a plugin's import error must not stop backups
            if on_message is not None:
                on_message(f"snapshot provider plugin {ep.name!r} failed to load: {exc}")
            continue
        if callable(factory):
            found.append((ep.name, factory))
        elif on_message is not None:
            on_message(f"snapshot provider plugin {ep.name!r} is not callable; skipped")
    return found


def load_providers(
    settings: ProviderSettings | None = None,
    *,
    names: Sequence[str] | None = None,
    on_message: Callable[[str], None] | None = None,
) -> list[SnapshotProvider]:
    """Build the providers (built-ins, then plugins), optionally only those in ``names``.

    A plugin with a built-in's name replaces the built-in in place, so a site
    can swap an implementation without changing the order.
    """
    settings = settings or ProviderSettings()
    factories: dict[str, ProviderFactory] = dict(builtin_factories())
    for name, factory in plugin_factories(on_message):
        factories[name] = factory
    providers: list[SnapshotProvider] = []
    for name, factory in factories.items():
        if names is not None and name not in names:
            continue
        try:
            providers.append(factory(settings))
        except Exception as exc:  # same rule as loading: one bad plugin is not fatal
            if on_message is not None:
                on_message(f"snapshot provider {name!r} could not be set up: {exc}")
    return providers
