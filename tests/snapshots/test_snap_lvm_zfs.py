"""LVM and ZFS providers at the command level: the argv they run and how they handle failures.

This kernel has neither device-mapper nor ZFS, so the external programs are
answered by a scripted runner; the providers' decisions are what is tested.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.snapshots.snap_helpers import ScriptedRunner, fail, ok

from shadowvault.errors import SnapshotError
from shadowvault.snapshots import SnapshotMode, SnapshotSession, Unsupported, Volume
from shadowvault.snapshots.lvm import LVS_ARGV, LvmProvider
from shadowvault.snapshots.zfs import ZfsProvider

LVS_OUT = (
    "  vg0|data|/dev/vg0/data|/dev/mapper/vg0-data|-wi-ao----\n"
    "  vg0|thin1|/dev/vg0/thin1|/dev/mapper/vg0-thin1|Vwi-aotz--\n"
    "  vg0|shadowvault-4194000-0badf00d-data|/dev/vg0/shadowvault-4194000-0badf00d-data|"
    "/dev/mapper/vg0-shadowvault--4194000--0badf00d--data|swi-a-s---\n"
)


def findmnt_answer(target: Path, source: str, fs_type: str, fsroot: str = "/") -> str:
    return f'SOURCE="{source}" FSTYPE="{fs_type}" TARGET="{target}" FSROOT="{fsroot}"\n'


def lvm_runner(
    target: Path, source: str = "/dev/mapper/vg0-data", fs_type: str = "xfs", **over: object
) -> ScriptedRunner:
    rules: list[tuple[list[str], object]] = [
        (["findmnt"], ok(findmnt_answer(target, source, fs_type))),
        (list(LVS_ARGV), ok(LVS_OUT)),
        (["lvcreate"], over.get("lvcreate", ok("  Logical volume created.\n"))),
        (["mount"], over.get("mount", ok())),
        (["umount"], ok()),
        (["lvremove"], over.get("lvremove", ok())),
        (["/bin/sh"], ok()),
    ]
    return ScriptedRunner(rules)  # type: ignore[arg-type]


def test_lvm_supports_finds_the_lv_behind_the_mount(tmp_path: Path) -> None:
    runner = lvm_runner(tmp_path)
    volume = LvmProvider(runner).supports(tmp_path / "sub")
    assert isinstance(volume, Volume)
    assert (volume.key, volume.root, volume.fs_type) == ("vg0/data", tmp_path, "xfs")
    assert runner.calls[0] == [
        "findmnt",
        "-n",
        "-P",
        "-o",
        "SOURCE,FSTYPE,TARGET,FSROOT",
        "--target",
        str(tmp_path / "sub"),
    ]


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("/dev/vda1", "not an LVM logical volume"),
        ("tmpfs", "not an LVM device"),
        ("/dev/mapper/vg0-shadowvault--4194000--0badf00d--data", "itself a snapshot"),
    ],
)
def test_lvm_declines_other_devices(tmp_path: Path, source: str, why: str) -> None:
    answer = LvmProvider(lvm_runner(tmp_path, source=source)).supports(tmp_path)
    assert isinstance(answer, Unsupported) and why in answer.reason


def test_lvm_without_lvs_installed_declines(tmp_path: Path) -> None:
    runner = ScriptedRunner([(["findmnt"], ok(findmnt_answer(tmp_path, "/dev/mapper/vg0-data", "ext4")))])
    answer = LvmProvider(runner).supports(tmp_path)
    assert isinstance(answer, Unsupported) and "lvs failed" in answer.reason and "not found" in answer.reason


def test_lvm_create_translate_delete_argv(tmp_path: Path) -> None:
    runner = lvm_runner(tmp_path)
    base = tmp_path / "run"
    provider = LvmProvider(runner, snapshot_size="5G", mount_base=base)
    volume = provider.supports(tmp_path)
    assert isinstance(volume, Volume)
    handle = provider.create(volume, "shadowvault", "77-0badf00d")
    snap = "shadowvault-77-0badf00d-data"
    mount_dir = base / snap
    assert runner.commands("lvcreate", "mount") == [
        ["lvcreate", "--snapshot", "--size", "5G", "--name", snap, "vg0/data"],
        ["mount", "-o", "ro,nouuid", f"/dev/vg0/{snap}", str(mount_dir)],
    ]
    assert handle.name == f"vg0/{snap}" and mount_dir.is_dir()
    assert provider.translate(handle, tmp_path / "a" / "b") == mount_dir / "a" / "b"
    provider.delete(handle)
    assert runner.commands("umount", "lvremove") == [
        ["umount", str(mount_dir)],
        ["lvremove", "-f", f"vg0/{snap}"],
    ]
    assert not mount_dir.exists()


def test_lvm_ext4_is_mounted_plain_ro_and_thin_lvs_take_no_size(tmp_path: Path) -> None:
    runner = lvm_runner(tmp_path, source="/dev/vg0/thin1", fs_type="ext4")
    provider = LvmProvider(runner, mount_base=tmp_path / "run")
    volume = provider.supports(tmp_path)
    assert isinstance(volume, Volume)
    provider.create(volume, "shadowvault", "77-0badf00d")
    snap = "shadowvault-77-0badf00d-thin1"
    assert runner.commands("lvcreate", "mount") == [
        ["lvcreate", "--snapshot", "--setactivationskip", "n", "--name", snap, "vg0/thin1"],
        ["mount", "-o", "ro", f"/dev/vg0/{snap}", str(tmp_path / "run" / snap)],
    ]


def test_lvm_create_failure_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    err = '  Volume group "vg0" has insufficient free space (10 extents): 256 required.\n'
    runner = lvm_runner(tmp_path, lvcreate=fail(err))
    provider = LvmProvider(runner, mount_base=tmp_path / "run")
    volume = provider.supports(tmp_path)
    assert isinstance(volume, Volume)
    with pytest.raises(SnapshotError, match="insufficient free space") as info:
        provider.create(volume, "shadowvault", "77-0badf00d")
    assert "vg0/data" in str(info.value) and "\n" not in str(info.value)
    assert runner.commands("mount", "lvremove") == []


def test_lvm_mount_failure_removes_the_new_lv(tmp_path: Path) -> None:
    runner = lvm_runner(tmp_path, mount=fail("mount: wrong fs type, bad option"))
    provider = LvmProvider(runner, mount_base=tmp_path / "run")
    volume = provider.supports(tmp_path)
    assert isinstance(volume, Volume)
    with pytest.raises(SnapshotError, match="wrong fs type"):
        provider.create(volume, "shadowvault", "77-0badf00d")
    assert runner.commands("lvremove") == [["lvremove", "-f", "vg0/shadowvault-77-0badf00d-data"]]
    assert list((tmp_path / "run").iterdir()) == []


def test_lvm_list_stale_and_session_removes_it(tmp_path: Path) -> None:
    runner = lvm_runner(tmp_path)
    base = tmp_path / "run"
    provider = LvmProvider(runner, mount_base=base)
    stale = provider.list_stale("shadowvault")
    assert [(h.name, h.session) for h in stale] == [
        ("vg0/shadowvault-4194000-0badf00d-data", "4194000-0badf00d")
    ]
    runner.calls.clear()
    messages: list[str] = []
    with SnapshotSession(
        SnapshotMode.REQUIRED,
        [tmp_path],
        pre_snapshot="freeze",
        post_snapshot="thaw",
        on_message=messages.append,
        providers=[provider],
        runner=runner,
    ) as ss:
        view = ss.view(tmp_path)
        assert view is not None and view.provider == "lvm"
    programs = [c[0] if c[0] != "/bin/sh" else c[2] for c in runner.calls]
    # pid 4194000 is above the kernel's pid limit, so that session is certainly dead.
    assert programs == [
        "lvs",
        "lvremove",
        "findmnt",
        "lvs",
        "freeze",
        "lvcreate",
        "mount",
        "thaw",
        "umount",
        "lvremove",
    ]
    assert any("removed stale lvm snapshot vg0/shadowvault-4194000-0badf00d-data" in m for m in messages)


def test_lvm_lvremove_failure_at_exit_is_reported(tmp_path: Path) -> None:
    runner = lvm_runner(tmp_path, lvremove=fail("  Logical volume vg0/x in use."))
    provider = LvmProvider(runner, mount_base=tmp_path / "run")
    messages: list[str] = []
    with SnapshotSession(
        SnapshotMode.AUTO, [tmp_path], on_message=messages.append, providers=[provider]
    ) as ss:
        assert ss.view(tmp_path) is not None
    assert any("could not remove lvm snapshot" in m and "in use" in m for m in messages)
    assert [h.provider for h in ss.leftovers] == ["lvm"]


ZFS_SNAPSHOTS = "tank/home@daily-1\ntank/home@shadowvault-4194000-0badf00d\ntank@shadowvault-nonsense\n"


def zfs_runner(target: Path, fs_type: str = "zfs", **over: object) -> ScriptedRunner:
    rules: list[tuple[list[str], object]] = [
        (["findmnt"], ok(findmnt_answer(target, "tank/home", fs_type))),
        (["zfs", "list", "-H", "-t", "snapshot"], ok(ZFS_SNAPSHOTS)),
        (["zfs", "list"], over.get("list", ok(f"tank/home\t{target}\n"))),
        (["zfs", "snapshot"], over.get("snapshot", ok())),
        (["zfs", "destroy"], over.get("destroy", ok())),
    ]
    return ScriptedRunner(rules)  # type: ignore[arg-type]


def test_zfs_create_translate_destroy_argv(tmp_path: Path) -> None:
    runner = zfs_runner(tmp_path)
    provider = ZfsProvider(runner)
    volume = provider.supports(tmp_path / "docs")
    assert isinstance(volume, Volume) and volume.key == "tank/home" and volume.root == tmp_path
    handle = provider.create(volume, "shadowvault", "77-0badf00d")
    assert handle.name == "tank/home@shadowvault-77-0badf00d"
    snapdir = tmp_path / ".zfs" / "snapshot" / "shadowvault-77-0badf00d"
    assert provider.translate(handle, tmp_path / "docs" / "x") == snapdir / "docs" / "x"
    provider.delete(handle)
    assert runner.commands("zfs") == [
        ["zfs", "list", "-H", "-o", "name,mountpoint", "tank/home"],
        ["zfs", "snapshot", "tank/home@shadowvault-77-0badf00d"],
        ["zfs", "destroy", "tank/home@shadowvault-77-0badf00d"],
    ]


def test_zfs_declines_other_file_systems_and_a_failing_zfs_list(tmp_path: Path) -> None:
    answer = ZfsProvider(zfs_runner(tmp_path, fs_type="ext4")).supports(tmp_path)
    assert isinstance(answer, Unsupported) and "not zfs" in answer.reason
    answer = ZfsProvider(
        zfs_runner(tmp_path, list=fail("cannot open 'tank/home': dataset does not exist"))
    ).supports(tmp_path)
    assert isinstance(answer, Unsupported) and "dataset does not exist" in answer.reason


def test_zfs_snapshot_failure_auto_falls_back_required_fails(tmp_path: Path) -> None:
    err = fail("cannot create snapshot 'tank/home@x': out of space")
    messages: list[str] = []
    with SnapshotSession(
        SnapshotMode.AUTO,
        [tmp_path],
        on_message=messages.append,
        providers=[ZfsProvider(zfs_runner(tmp_path, snapshot=err))],
    ) as ss:
        assert ss.view(tmp_path) is None
    assert any("read live" in m and "out of space" in m for m in messages)
    runner = zfs_runner(tmp_path, snapshot=err)
    with (
        pytest.raises(SnapshotError, match="out of space"),
        SnapshotSession(
            SnapshotMode.REQUIRED, [tmp_path], on_message=lambda m: None, providers=[ZfsProvider(runner)]
        ),
    ):
        pytest.fail("the block must not run")
    assert runner.commands("zfs")[-1][:2] == ["zfs", "snapshot"]  # nothing made, nothing destroyed


def test_zfs_stale_listing_and_refusal_to_destroy_a_dataset(tmp_path: Path) -> None:
    runner = zfs_runner(tmp_path)
    provider = ZfsProvider(runner)
    assert [(h.name, h.session) for h in provider.list_stale("shadowvault")] == [
        ("tank/home@shadowvault-4194000-0badf00d", "4194000-0badf00d")
    ]
    stale = provider.list_stale("shadowvault")[0]
    bogus = type(stale)("zfs", "tank/home", stale.session)
    with pytest.raises(SnapshotError, match="not a snapshot name"):
        provider.delete(bogus)
    assert runner.commands("zfs")[-1][1] == "list"
