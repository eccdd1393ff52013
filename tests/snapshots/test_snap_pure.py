"""Pure decisions and parsers of the snapshot layer, and the command runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowvault.errors import SnapshotError
from shadowvault.snapshots import SnapshotMode, load_providers
from shadowvault.snapshots.btrfs import map_to_mounts, parse_subvolume_list
from shadowvault.snapshots.commands import check, first_error_line, run_command
from shadowvault.snapshots.interface import translate_under
from shadowvault.snapshots.lvm import find_lv, lvcreate_argv, mount_options, parse_lvs, snapshot_lv_name
from shadowvault.snapshots.model import is_stale_session, new_session_id, session_pid, split_session
from shadowvault.snapshots.mounts import find_mount, nested_mounts, parse_findmnt, parse_mountinfo
from shadowvault.snapshots.registry import ProviderSettings
from shadowvault.snapshots.session import explain, required_failure
from shadowvault.snapshots.zfs import parse_stale_snapshots

MOUNTINFO = (
    "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
    "43 22 0:39 / /mnt/pool rw,relatime shared:30 - btrfs /dev/loop0 rw,subvolid=5,subvol=/\n"
    "44 22 0:39 /home /home rw,relatime - btrfs /dev/loop0 rw,subvolid=256,subvol=/home\n"
    "45 22 0:40 / /mnt/my\\040disk ro,relatime - xfs /dev/loop1 ro,attr2\n"
    "46 22 0:41 / /mnt/pool rw - tmpfs tmpfs rw\n"
)


def test_mode_values_match_the_config_keys() -> None:
    assert [m.value for m in SnapshotMode] == ["off", "auto", "required"]
    assert SnapshotMode("required") is SnapshotMode.REQUIRED


def test_session_ids_round_trip_and_reject_foreign_names() -> None:
    sid = new_session_id(pid=4321)
    assert session_pid(sid) == 4321
    assert split_session(sid + "-data") == (sid, "-data")
    for bad in ("abc-0badf00d", "12-xyz", "12", "12-0BADF00D", "12-0badf0"):
        assert split_session(bad) is None or session_pid(bad) is None


def test_stale_rule() -> None:
    alive = frozenset({1, 50})
    own = frozenset({"50-0badf00d"})
    assert is_stale_session("99-0badf00d", alive=alive, own_pid=50, own_sessions=own)
    assert not is_stale_session("1-0badf00d", alive=alive, own_pid=50, own_sessions=own)
    assert not is_stale_session("50-0badf00d", alive=alive, own_pid=50, own_sessions=own)
    assert is_stale_session("50-deadbeef", alive=alive, own_pid=50, own_sessions=own)
    assert is_stale_session("garbage", alive=alive, own_pid=50, own_sessions=own)


def test_explanations_and_required_message() -> None:
    assert explain(["a: no", "b: nope"]) == "a: no; b: nope"
    assert explain([]) == "no snapshot providers are available"
    assert required_failure({}) is None
    text = required_failure({Path("/s1"): "why1", Path("/s2"): "why2"})
    assert text == "snapshot required but /s1 cannot be snapshotted: why1 (and 1 more source(s))"


def test_mountinfo_parsing_and_lookup() -> None:
    entries = parse_mountinfo(MOUNTINFO)
    assert [e.fs_type for e in entries] == ["ext4", "btrfs", "btrfs", "xfs", "tmpfs"]
    assert entries[3].mount_point == Path("/mnt/my disk") and entries[3].read_only
    assert entries[2].root == "/home"
    assert find_mount(Path("/home/u/f"), entries) == entries[2]
    assert find_mount(Path("/mnt/my disk/a"), entries) == entries[3]
    assert find_mount(Path("/mnt/pool/a"), entries) == entries[4]  # mounted on top wins
    assert find_mount(Path("/homework"), entries) == entries[0]
    # /mnt/pool has a tmpfs on top: what is visible there is not data a snapshot would hold.
    assert nested_mounts(Path("/"), entries) == [Path("/home"), Path("/mnt/my disk")]
    assert nested_mounts(Path("/mnt"), entries) == [Path("/mnt/my disk")]
    assert nested_mounts(Path("/mnt/pool"), entries) == []


def test_findmnt_pairs_unescape() -> None:
    text = 'SOURCE="/dev/mapper/vg0-data" FSTYPE="xfs" TARGET="/srv/my\\x20data" FSROOT="/"\n'
    assert parse_findmnt(text) == {
        "SOURCE": "/dev/mapper/vg0-data",
        "FSTYPE": "xfs",
        "TARGET": "/srv/my data",
        "FSROOT": "/",
    }
    assert parse_findmnt("\n") is None


def test_btrfs_subvolume_listing_maps_through_mounts() -> None:
    listing = (
        "ID 256 gen 8 top level 5 path home\n"
        "ID 258 gen 9 top level 256 path <FS_TREE>/home/.shadowvault-snap-1-0badf00d\n"
        "ID 259 gen 9 top level 5 path with space/x\n"
    )
    assert parse_subvolume_list(listing) == ["home", "home/.shadowvault-snap-1-0badf00d", "with space/x"]
    mounts = [e for e in parse_mountinfo(MOUNTINFO) if e.fs_type == "btrfs"]
    assert map_to_mounts("home/.s", mounts) == [Path("/mnt/pool/home/.s"), Path("/home/.s")]
    assert map_to_mounts("other/.s", mounts) == [Path("/mnt/pool/other/.s")]


def test_translate_under() -> None:
    assert translate_under(Path("/v"), Path("/s"), Path("/v/a/b")) == Path("/s/a/b")
    assert translate_under(Path("/v"), Path("/s"), Path("/v")) == Path("/s")
    with pytest.raises(SnapshotError, match="not on the snapshotted volume"):
        translate_under(Path("/v"), Path("/s"), Path("/vx/a"))


def test_lvm_decisions() -> None:
    rows = parse_lvs("  vg|lv|/dev/vg/lv|/dev/mapper/vg-lv|-wi-ao----\n  junk\n")
    assert len(rows) == 1 and not rows[0].is_thin and not rows[0].is_snapshot
    assert find_lv("/dev/mapper/vg-lv", rows) is rows[0]
    assert find_lv("/dev/vg/lv", rows) is rows[0]
    assert find_lv("/dev/vg/other", rows) is None
    assert mount_options("xfs") == "ro,nouuid" and mount_options("ext4") == "ro"
    assert lvcreate_argv("vg", "lv", "s", size="20%ORIGIN", thin=False) == [
        *("lvcreate", "--snapshot", "--extents", "20%ORIGIN", "--name", "s", "vg/lv")
    ]
    name = snapshot_lv_name("shadowvault", "1-0badf00d", "x" * 200)
    assert len(name) == 127 and name.startswith("shadowvault-1-0badf00d-x")


def test_zfs_stale_names() -> None:
    text = "a@shadowvault-1-0badf00d\na@shadowvault-1-0badf00d-x\na/b@daily\nshadowvault-2-0badf00d\n"
    assert parse_stale_snapshots(text, "shadowvault") == [("a@shadowvault-1-0badf00d", "1-0badf00d")]


def test_run_command_reports_status_and_output() -> None:
    good = run_command(["/bin/sh", "-c", "echo out; echo warn >&2"])
    assert good.ok and good.stdout == "out\n" and check(good, "x") == "out\n"
    bad = run_command(["/bin/sh", "-c", "echo first >&2; echo 'the real error' >&2; exit 4"])
    assert bad.returncode == 4 and first_error_line(bad) == "the real error"
    with pytest.raises(SnapshotError, match=r"doing it failed: .*the real error"):
        check(bad, "doing it")
    missing = run_command(["shadowvault-no-such-program"])
    assert missing.returncode == 127 and "not found" in first_error_line(missing)


def test_registry_order_and_filter() -> None:
    messages: list[str] = []
    providers = load_providers(ProviderSettings(), on_message=messages.append)
    assert [p.name for p in providers][:4] == ["btrfs", "zfs", "lvm", "reflink"]
    assert [p.name for p in load_providers(names=["reflink"])] == ["reflink"]
    assert messages == []
