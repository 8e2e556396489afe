"""A Parquet file's footer, read in Python before pyarrow looks at its column chunks.

pyarrow checks some footer fields only when a column chunk's metadata is first built, and
from Python (``FileMetaData.row_group(i).column(j)``) an error there ends the process instead
of raising (pyarrow 26: a level histogram of the wrong length in a column's size statistics
aborts with "Definition level histogram size mismatch"). An uploaded file must never stop the
app, so the trace loader takes what it needs from the footer here (values and sizes per
column chunk) and refuses what pyarrow would choke on, and never builds those objects itself.

The footer is a Thrift struct in the compact protocol (FileMetaData in parquet.thrift);
``decode_struct`` reads any such struct into ``{field id: value}`` without a schema.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import IO, Any

MAGIC = b"PAR1"
_MAX_DEPTH = 32  # nesting in a real footer is below 8
# A footer's size and its row groups bound the time decoding it takes here (Python: about
# 0.3 s for 10^4 column chunks); an export has one row group per 2^20 rows, so a handful
MAX_FOOTER_BYTES = 16 * 2**20
MAX_ROW_GROUPS = 64
# Pages walked before pyarrow reads a chunk: their headers state the size each decompresses
# to, which is what pyarrow allocates (the footer's sizes are only a claim about them)
MAX_PAGES = 20_000
_PAGE_HEADER_MAX = 2**16  # bytes of one page header (statistics included) read at most


class FooterError(ValueError):
    """The footer cannot be decoded or holds what the reader refuses."""


@dataclass(frozen=True)
class ChunkFacts:
    """One column chunk, as its footer entry states it: values, sizes, where its pages are."""
    num_values: int
    total_uncompressed_size: int
    total_compressed_size: int = 0
    start: int = 0  # offset of its first page (the dictionary page's, if it has one)


@dataclass(frozen=True)
class PageFacts:
    """A chunk's pages, as their headers state them: what they decompress to, their values."""
    pages: int
    uncompressed: int
    num_values: int


def footer_bytes(source: str | os.PathLike | IO[bytes]) -> bytes:
    """The Thrift-encoded FileMetaData at the end of a Parquet file (path or seekable
    binary file; its position is left where it was)."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            return _tail(f)
    where = source.tell()
    try:
        return _tail(source)
    finally:
        source.seek(where)


def _tail(f: IO[bytes]) -> bytes:
    size = f.seek(0, os.SEEK_END)
    if size < 12:
        raise FooterError("too short to be Parquet")
    f.seek(size - 8)
    length, magic = struct.unpack("<i4s", f.read(8))
    if magic != MAGIC or not 0 < length <= size - 12:
        raise FooterError("no Parquet footer at its end")
    if length > MAX_FOOTER_BYTES:
        raise FooterError(f"the footer takes {length / 2**20:,.1f} MB; at most "
                          f"{MAX_FOOTER_BYTES // 2**20} MB are read")
    f.seek(size - 8 - length)
    return f.read(length)


def row_groups(footer: bytes, max_levels: list[tuple[int, int, bool]]
               ) -> list[tuple[int, list[ChunkFacts]]]:
    """Per row group: its row count and, per leaf column, what the footer says of the
    chunk. ``max_levels`` has,
    per leaf column, (max repetition level, max definition level, is BYTE_ARRAY). Raises
    FooterError for a footer whose chunks pyarrow could not describe safely: encrypted
    chunks, a missing or ill-typed field, a level histogram of the wrong length, byte-array
    sizes on a column that holds no byte arrays."""
    meta = decode_struct(footer, max_row_groups=MAX_ROW_GROUPS)
    groups = []
    for i, rg in enumerate(_field(meta, 4, list, "row groups", default=[])):
        rg = _struct(rg, "a row group")
        chunks = _field(rg, 1, list, f"row group {i}'s columns")
        rows = _field(rg, 3, int, f"row group {i}'s row count")
        if rows < 0:
            raise FooterError(f"row group {i} has a negative row count")
        if len(chunks) != len(max_levels):
            raise FooterError(f"row group {i} has {len(chunks)} columns, the schema "
                              f"{len(max_levels)}")
        groups.append((rows, [_chunk(_struct(c, "a column chunk"), levels,
                                     f"row group {i}, column {j}")
                              for j, (c, levels) in enumerate(zip(chunks, max_levels))]))
    return groups


def _chunk(chunk: dict, levels: tuple[int, int, bool], where: str) -> ChunkFacts:
    if 8 in chunk or 9 in chunk:  # crypto_metadata, encrypted_column_metadata
        raise FooterError(f"{where} is encrypted")
    meta = _struct(_field(chunk, 3, dict, f"{where}'s metadata"), where)
    data_at = _field(meta, 9, int, f"{where}'s data page offset")
    dict_at = _field(meta, 11, int, f"{where}'s dictionary page offset", default=-1)
    facts = ChunkFacts(_field(meta, 5, int, f"{where}'s value count"),
                       _field(meta, 6, int, f"{where}'s size"),
                       _field(meta, 7, int, f"{where}'s compressed size"),
                       dict_at if 0 < dict_at < data_at else data_at)
    if min(facts.num_values, facts.total_uncompressed_size, facts.total_compressed_size,
           facts.start) < 0:
        raise FooterError(f"{where} has a negative count, size or offset")
    sizes = _field(meta, 16, dict, f"{where}'s size statistics", default={})
    max_rep, max_def, byte_array = levels
    for fid, most, name in ((2, max_rep, "repetition"), (3, max_def, "definition")):
        histogram = _field(sizes, fid, list, f"{where}'s {name} level histogram", default=[])
        if histogram and len(histogram) != most + 1:
            raise FooterError(f"{where}'s {name} level histogram has {len(histogram)} "
                              f"entries, expected {most + 1}")
    if 1 in sizes and not byte_array:
        raise FooterError(f"{where} states byte-array sizes but holds no byte arrays")
    return facts


def _struct(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise FooterError(f"{what} is not a struct")
    return value


def _field(obj: dict, fid: int, kind: type, what: str, default: Any = None) -> Any:
    if fid not in obj:
        if default is None:
            raise FooterError(f"lacks {what}")
        return default
    value = obj[fid]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise FooterError(f"{what} has the wrong type")
    return value


# --- the compact protocol ----------------------------------------------------------------

_BOOL_TRUE, _BOOL_FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY = range(1, 9)
_LIST, _SET, _MAP, _STRUCT = range(9, 13)


def decode_struct(buf: bytes, max_row_groups: int | None = None) -> dict:
    """A compact-protocol struct -> {field id: value}; lists as lists, maps as lists of
    pairs, binaries as bytes, nested structs as dicts. Raises FooterError on anything
    malformed (truncated, unknown type, too deep, a size beyond the bytes left), and, for a
    FileMetaData, on more than ``max_row_groups`` row groups (before decoding them)."""
    reader = _Reader(buf, max_row_groups)
    try:
        return reader.struct(0)
    except (IndexError, struct.error):
        raise FooterError("the footer ends inside a value") from None


def _header(buf: bytes) -> tuple[dict, int]:
    """A page header decoded from the start of ``buf``: (its fields, its length in bytes)."""
    reader = _Reader(buf)
    try:
        return reader.struct(0), reader.at
    except (IndexError, struct.error):
        raise FooterError("a page header ends inside a value") from None


def chunk_pages(f: IO[bytes], chunk: ChunkFacts, where: str, budget: list[int]) -> PageFacts:
    """Walk a column chunk's pages by their headers, reading only the headers: they must
    tile the chunk's bytes exactly, and their values add up to no more than the footer's.
    ``budget`` ([pages left]) is shared by every chunk of a file (MAX_PAGES in all)."""
    at, end = chunk.start, chunk.start + chunk.total_compressed_size
    pages = uncompressed = values = 0
    while at < end:
        budget[0] -= 1
        if budget[0] < 0:
            raise FooterError(f"has more than {MAX_PAGES:,} pages")
        f.seek(at)
        head, used = _header(f.read(min(_PAGE_HEADER_MAX, end - at)))
        size, stored = head.get(2), head.get(3)
        if not (isinstance(size, int) and isinstance(stored, int)) or size < 0 or stored < 0:
            raise FooterError(f"{where}: a page header lacks its sizes")
        # data page (v1, v2) or dictionary page: its number of values comes first
        inner = head.get(5) or head.get(8) or head.get(7) or {}
        n = inner.get(1, 0) if isinstance(inner, dict) else 0
        if not isinstance(n, int) or n < 0:
            raise FooterError(f"{where}: a page header's value count is not a count")
        if head.get(1) != 2:  # a dictionary page's entries are not the chunk's values
            values += n
        pages, uncompressed = pages + 1, uncompressed + size
        at += used + stored
    if at != end:
        raise FooterError(f"{where}: its pages overrun the chunk's {chunk.total_compressed_size:,} "
                          "bytes")
    if values > chunk.num_values:
        raise FooterError(f"{where}: its pages hold {values:,} values, the footer says "
                          f"{chunk.num_values:,}")
    return PageFacts(pages, uncompressed, values)


class _Reader:
    def __init__(self, buf: bytes, max_row_groups: int | None = None):
        self.buf, self.at = memoryview(buf), 0
        self.max_row_groups = max_row_groups

    def byte(self) -> int:
        b = self.buf[self.at]
        self.at += 1
        return b

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            b = self.byte()
            value |= (b & 0x7F) << shift
            if b < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise FooterError("a number in the footer is too long")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def size(self, n: int) -> int:
        if n > len(self.buf) - self.at:  # every element takes at least one byte
            raise FooterError("a list in the footer is longer than the footer")
        return n

    def struct(self, depth: int) -> dict:
        if depth > _MAX_DEPTH:
            raise FooterError("the footer nests too deeply")
        fields: dict[int, Any] = {}
        fid = 0
        while (head := self.byte()) != 0:
            delta, kind = head >> 4, head & 0x0F
            fid = fid + delta if delta else self.zigzag()
            if kind in (_BOOL_TRUE, _BOOL_FALSE):
                fields[fid] = kind == _BOOL_TRUE
            else:
                if depth == 0 and fid == 4 and kind == _LIST and self.max_row_groups is not None:
                    self._check_count(self.max_row_groups)
                fields[fid] = self.value(kind, depth)
        return fields

    def _check_count(self, most: int) -> None:
        """The list about to be read holds at most ``most`` elements (FileMetaData's row
        groups: refused before any is decoded)."""
        at = self.at
        head = self.byte()
        n = head >> 4
        n = self.varint() if n == 15 else n
        self.at = at
        if n > most:
            raise FooterError(f"the file has {n:,} row groups; at most {most} are read")

    def value(self, kind: int, depth: int) -> Any:
        if kind in (_BOOL_TRUE, _BOOL_FALSE):  # inside a list or map: one byte
            return self.byte() == 1
        if kind == _BYTE:
            return struct.unpack("b", bytes([self.byte()]))[0]
        if kind in (_I16, _I32, _I64):
            return self.zigzag()
        if kind == _DOUBLE:
            self.at += 8
            return struct.unpack("<d", self.buf[self.at - 8:self.at])[0]
        if kind == _BINARY:
            n = self.size(self.varint())
            self.at += n
            return bytes(self.buf[self.at - n:self.at])
        if kind in (_LIST, _SET):
            head = self.byte()
            n = head >> 4
            n = self.size(self.varint() if n == 15 else n)
            return [self.value(head & 0x0F, depth + 1) for _ in range(n)]
        if kind == _MAP:
            n = self.size(self.varint())
            if not n:
                return []
            kinds = self.byte()
            return [(self.value(kinds >> 4, depth + 1), self.value(kinds & 0x0F, depth + 1))
                    for _ in range(n)]
        if kind == _STRUCT:
            return self.struct(depth + 1)
        raise FooterError(f"the footer holds a value of unknown type {kind}")
