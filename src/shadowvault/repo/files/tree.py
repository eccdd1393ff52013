"""Tree blobs: the JSON directory listing ``{"nodes": [...]}`` + newline, nodes sorted by name.

Node fields, their order and which are left out when empty follow restic's
``Node`` struct (``internal/restic/node.go``). Keys we do not know are kept in
``Node.extra`` and written back after the known ones, so newer restic fields
and our own per-file outcome (key ``"shadowvault"``) survive a round trip.

Names are Python ``str`` with undecodable bytes carried as surrogate escapes
(``os.fsdecode``). On disk a name is first quoted the way restic quotes it (Go's
``strconv.Quote`` without the outer quotes: invalid UTF-8 bytes become ``\\xNN``,
``"`` and ``\\`` are backslash-escaped, unprintable runes become ``\\n``,
``\\uNNNN`` …) and then JSON-encoded. restic unquotes on read, so both tools
restore the exact bytes of any name. Symlink targets that are not valid UTF-8 go
into ``linktarget_raw`` (base64), as newer restic versions do; ``linktarget``
then holds a lossy copy for older readers.
"""

from __future__ import annotations

import base64
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from shadowvault.repo.files import jsonfmt
from shadowvault.repo.ids import parse_id

NODE_TYPES = ("file", "dir", "symlink", "dev", "chardev", "fifo", "socket")

_KNOWN_KEYS = frozenset(
    {
        *("name", "type", "mode", "mtime", "atime", "ctime", "uid", "gid", "user", "group", "inode"),
        *("device_id", "size", "links", "linktarget", "linktarget_raw", "extended_attributes"),
        *("device", "content", "subtree", "error"),
    }
)
_SHORT_ESCAPES = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}
_UNESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, "'": 39, '"': 34}


def _is_print(ch: str) -> bool:
    # Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and
    # the ASCII space, but no other space characters.
    return ch == " " or unicodedata.category(ch)[0] in "LMNPS"


def _quotes_as_itself(text: str) -> bool:
    """Printable ASCII needs no escape but for the quote and the backslash: the common case."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def go_quote(raw: bytes) -> str:
    """Go ``strconv.Quote(raw)`` without the surrounding double quotes."""
    if raw.isascii():
        text = raw.decode("ascii")
        if _quotes_as_itself(text):
            return text
    out: list[str] = []
    for ch in raw.decode("utf-8", "surrogateescape"):
        cp = ord(ch)
        if 0xDC80 <= cp <= 0xDCFF:
            out.append(f"\\x{cp - 0xDC00:02x}")
        elif ch in ('"', "\\"):
            out.append("\\" + ch)
        elif _is_print(ch):
            out.append(ch)
        elif cp in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[cp])
        elif cp < 0x20 or cp == 0x7F:
            out.append(f"\\x{cp:02x}")
        elif cp < 0x10000:
            out.append(f"\\u{cp:04x}")
        else:
            out.append(f"\\U{cp:08x}")
    return "".join(out)


def go_unquote(text: str) -> bytes:
    """Inverse of :func:`go_quote` (Go ``strconv.Unquote`` of ``'"' + text + '"'``)."""
    if "\\" not in text:
        return text.encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch != "\\":
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
            continue
        if i + 1 >= n:
            raise ValueError(f"name {text!r} ends in a lone backslash")
        esc = text[i + 1]
        if esc in _UNESCAPES:
            out.append(_UNESCAPES[esc])
            i += 2
        elif esc == "x":
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        elif esc in "01234567":
            out.append(int(text[i + 1 : i + 4], 8) & 0xFF)
            i += 4
        elif esc in "uU":
            width = 4 if esc == "u" else 8
            out += chr(int(text[i + 2 : i + 2 + width], 16)).encode("utf-8", "surrogatepass")
            i += 2 + width
        else:
            raise ValueError(f"name {text!r} has an unknown escape \\{esc}")
    return bytes(out)


def _fsencode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _fsdecode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


@dataclass
class Node:
    """One directory entry, with exactly restic's node fields (times in ns since the epoch).

    ``mode`` is Go ``os.FileMode`` bits as restic stores them. ``content`` lists
    data blob ids (files; ``None`` for other types), ``subtree`` is the tree id
    of a directory. ``extra`` holds JSON keys this version does not know.
    """

    name: str
    type: str
    mode: int = 0
    mtime: int = 0
    atime: int = 0
    ctime: int = 0
    uid: int = 0
    gid: int = 0
    user: str = ""
    group: str = ""
    inode: int = 0
    device_id: int = 0
    size: int = 0
    links: int = 0
    linktarget: str = ""
    extended_attributes: list[tuple[str, bytes]] = field(default_factory=list)
    device: int = 0
    content: list[bytes] | None = None
    subtree: bytes | None = None
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object in restic's key order, empty ``omitempty`` fields left out."""
        # Written out field by field, and a timestamp equal to mtime formatted once: this runs
        # for every entry of every backup on the walking thread (issue 10).
        name = self.name
        if not _quotes_as_itself(name):
            name = go_quote(_fsencode(name))
        d: dict[str, Any] = {"name": name, "type": self.type}
        if self.mode:
            d["mode"] = self.mode
        fmt = jsonfmt.format_time
        mtime, atime, ctime = self.mtime, self.atime, self.ctime
        d["mtime"] = m = fmt(mtime)
        d["atime"] = m if atime == mtime else fmt(atime)
        d["ctime"] = m if ctime == mtime else fmt(ctime)
        d["uid"] = self.uid
        d["gid"] = self.gid
        if self.user:
            d["user"] = self.user
        if self.group:
            d["group"] = self.group
        if self.inode:
            d["inode"] = self.inode
        if self.device_id:
            d["device_id"] = self.device_id
        if self.size:
            d["size"] = self.size
        if self.links:
            d["links"] = self.links
        if self.linktarget:
            raw = _fsencode(self.linktarget)
            d["linktarget"] = self.linktarget
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                d["linktarget_raw"] = base64.b64encode(raw).decode("ascii")
        if self.extended_attributes:
            d["extended_attributes"] = [
                {"name": name, "value": base64.b64encode(value).decode("ascii")}
                for name, value in self.extended_attributes
            ]
        if self.device:
            d["device"] = self.device
        d["content"] = None if self.content is None else [c.hex() for c in self.content]
        if self.subtree is not None:
            d["subtree"] = self.subtree.hex()
        if self.error:
            d["error"] = self.error
        if self.extra:
            for key, value in self.extra.items():
                if key not in d:
                    d[key] = value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Node:
        """Parse one node object; ``ValueError`` when a field is malformed."""
        # Every node of every parent tree comes through here in an incremental backup (200,000
        # for as many small files): a number already an ``int`` (as JSON gives it) is not
        # converted again, and the constructor is called positionally.
        get = d.get
        try:
            raw_target = get("linktarget_raw")
            if raw_target is not None:
                linktarget = _fsdecode(base64.b64decode(raw_target))
            else:
                linktarget = get("linktarget") or ""
            name = d["name"]
            # Plain ASCII without escapes is its own unquoted, decoded form: most names are.
            if type(name) is not str or not name.isascii() or "\\" in name:
                name = _fsdecode(go_unquote(name))
            node_type = d["type"]
            # The three timestamps are often the same string: parse it once.
            mtime_text, atime_text, ctime_text = get("mtime"), get("atime"), get("ctime")
            parse = jsonfmt.parse_time
            mtime = parse(mtime_text) if mtime_text else 0
            atime = mtime if atime_text == mtime_text else (parse(atime_text) if atime_text else 0)
            ctime = mtime if ctime_text == mtime_text else (parse(ctime_text) if ctime_text else 0)
            content = get("content")
            if content is not None:
                content = [parse_id(c) for c in content]
            subtree = get("subtree")
            if subtree is not None:
                subtree = parse_id(subtree)
            xattrs = get("extended_attributes")
            numbers = [get(k) or 0 for k in _INT_KEYS]
            for n in numbers:
                if type(n) is not int:
                    numbers = [int(v) for v in numbers]
                    break
            mode, uid, gid, inode, device_id, size, links, device = numbers
            # Positional, in the fields' order (a round-trip test pins it): the keyword form
            # costs more per call. Not ``object.__new__`` with a filled ``__dict__``: faster still,
            # but such an instance loses CPython's shared-key dictionary and takes twice the memory
            # (528 against 264 bytes), and a restore keeps many nodes alive.
            return cls(
                name,
                node_type,
                mode,
                mtime,
                atime,
                ctime,
                uid,
                gid,
                get("user") or "",
                get("group") or "",
                inode,
                device_id,
                size,
                links,
                linktarget,
                [(a["name"], base64.b64decode(a.get("value") or b"")) for a in xattrs] if xattrs else [],
                device,
                content,
                subtree,
                get("error") or "",
                {} if d.keys() <= _KNOWN_KEYS else {k: v for k, v in d.items() if k not in _KNOWN_KEYS},
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"tree node lacks a valid field: {exc}") from exc


_INT_KEYS = ("mode", "uid", "gid", "inode", "device_id", "size", "links", "device")


@dataclass
class Tree:
    """A directory listing. ``to_json`` sorts nodes by the bytes of their names, like restic."""

    nodes: list[Node] = field(default_factory=list)

    def sorted_nodes(self) -> list[Node]:
        """Nodes in restic's order (byte-wise by name)."""
        return sorted(self.nodes, key=lambda n: _fsencode(n.name))

    def to_json(self) -> bytes:
        """The tree blob's plaintext: compact JSON plus a trailing newline."""
        return jsonfmt.dumps({"nodes": [n.to_dict() for n in self.sorted_nodes()]}) + b"\n"

    @classmethod
    def from_json(cls, raw: bytes) -> Tree:
        """Parse a tree blob; ``ValueError`` when malformed."""
        doc = jsonfmt.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("tree is not a JSON object")
        return cls([Node.from_dict(n) for n in doc.get("nodes") or []])

    def find(self, name: str) -> Node | None:
        """The node called ``name``, or None."""
        for node in self.nodes:
            if node.name == name:
                return node
        return None
