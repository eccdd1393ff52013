"""On a remote backend a walk reads a pack's trees together instead of one round trip per tree."""

from __future__ import annotations

from shadowvault.repo import BlobType, MemBackend, Node, Repository, Tree
from shadowvault.repo.backends import FileType

FAST_KDF = (1024, 8, 1)


class CountingMem(MemBackend):
    """The in-memory backend, counting pack reads; ``remote`` says how the repository sees it."""

    def __init__(self, remote: bool) -> None:
        super().__init__()
        self.remote = remote
        self.pack_loads = 0

    def load(self, ft: FileType, name: str, offset: int = 0, length: int | None = None) -> bytes:
        if ft is FileType.PACK:
            self.pack_loads += 1
        return super().load(ft, name, offset, length)


def _build(be: CountingMem) -> tuple[bytes, int]:
    """A tree of 1 + 30 directories with a file blob each, written bottom-up as a backup does."""
    repo = Repository.init(be, "pw", kdf=FAST_KDF)
    subs = []
    for i in range(30):
        blob = repo.save_blob(BlobType.DATA, f"file {i}".encode())[0]
        leaf = Tree([Node(name=f"f{i}", type="file", mode=0o644, size=6, content=[blob])])
        subs.append(Node(name=f"d{i:02}", type="dir", mode=0o755, subtree=repo.save_tree(leaf)))
    root = repo.save_tree(Tree(subs))
    repo.flush()
    repo.close()
    return root, 31


def _walk(repo: Repository, tree_id: bytes) -> list[str]:
    names = []
    for node in repo.load_tree(tree_id).nodes:
        names.append(node.name)
        if node.subtree is not None:
            names += _walk(repo, node.subtree)
    return names


def test_remote_walk_reads_trees_together() -> None:
    remote, local = CountingMem(remote=True), CountingMem(remote=False)
    root, n_trees = _build(remote)
    assert _build(local)[0] == root  # same content (so the same tree ids), its own repository
    results = []
    for be in (remote, local):
        be.pack_loads = 0
        repo = Repository.open(be, "pw")
        results.append(_walk(repo, root))
        repo.close()
    assert results[0] == results[1] and len(results[0]) == 60
    assert local.pack_loads == n_trees
    assert remote.pack_loads <= 2
