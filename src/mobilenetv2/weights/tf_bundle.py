"""Read a TensorFlow checkpoint (the tensor-bundle format: ``PREFIX.index`` and ``PREFIX.data-SSSSS-of-NNNNN``)
without TensorFlow.

The ``.index`` file is a LevelDB SSTable (data blocks of prefix-compressed keys with restart points, an index block of
block handles, a 48-byte footer ending in the table magic) whose values are ``BundleHeaderProto`` (key "") and
``BundleEntryProto`` (dtype, shape, shard, offset, size) messages; each tensor is raw little-endian bytes at
(shard, offset, size). The two messages are declared from tensorflow/core/protobuf/tensor_bundle.proto in a private
descriptor pool on tensorboard's ``TensorShapeProto`` and ``DataType``.
"""

from __future__ import annotations

import os
import struct
from functools import cache
from pathlib import Path

import numpy as np

from mobilenetv2.errors import UserError
from mobilenetv2.extras import require

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER = 5  # a compression-type byte and a masked CRC32C after every block
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64, 10: np.bool_,
          14: "bfloat16", 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64}


@cache
def bundle_messages() -> tuple[type, type]:
    """``BundleHeaderProto`` and ``BundleEntryProto`` (tensor_bundle.proto's fields; versions and slices kept as bytes)."""
    require("tensorboard.compat.proto.tensor_shape_pb2", "tensorboard")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from tensorboard.compat.proto import tensor_shape_pb2, types_pb2

    pool = descriptor_pool.DescriptorPool()
    for module in (tensor_shape_pb2, types_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        pool.Add(proto)
    f = descriptor_pb2.FieldDescriptorProto
    spec = {"BundleHeaderProto": [("num_shards", 1, f.TYPE_INT32, None), ("endianness", 2, f.TYPE_INT32, None),
                                  ("version", 3, f.TYPE_BYTES, None)],
            "BundleEntryProto": [("dtype", 1, f.TYPE_ENUM, ".tensorboard.DataType"),
                                 ("shape", 2, f.TYPE_MESSAGE, ".tensorboard.TensorShapeProto"),
                                 ("shard_id", 3, f.TYPE_INT32, None), ("offset", 4, f.TYPE_INT64, None),
                                 ("size", 5, f.TYPE_INT64, None), ("crc32c", 6, f.TYPE_FIXED32, None),
                                 ("slices", 7, f.TYPE_BYTES, None)]}
    bundle = descriptor_pb2.FileDescriptorProto(name="mobilenetv2/tensor_bundle.proto", package="mobilenetv2.tf",
                                                syntax="proto3", dependency=[m.DESCRIPTOR.name for m in
                                                                              (tensor_shape_pb2, types_pb2)])
    for name, fields in spec.items():
        message = bundle.message_type.add(name=name)
        for field, number, kind, type_name in fields:
            label = f.LABEL_REPEATED if field == "slices" else f.LABEL_OPTIONAL
            message.field.add(name=field, number=number, type=kind, label=label, type_name=type_name)
    pool.Add(bundle)
    return tuple(message_factory.GetMessageClass(pool.FindMessageTypeByName(f"mobilenetv2.tf.{n}")) for n in spec)


def read_bundle(prefix: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every numeric tensor of the checkpoint ``prefix`` (``PREFIX.index`` beside its data shards), by variable name;
    string and partitioned (sliced) variables are left out."""
    prefix = Path(prefix)
    index = Path(f"{prefix}.index")
    try:
        table = index.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read checkpoint index {index}: {exc.strerror or exc}") from exc
    header_cls, entry_cls = bundle_messages()
    records = dict(sstable_records(table, index))
    if b"" not in records:
        raise UserError(f"{index}: no bundle header; not a TensorFlow checkpoint index")
    header = _parse(header_cls, records.pop(b""), index, "header")
    if header.endianness != 0:
        raise UserError(f"{index}: a big-endian checkpoint; only little-endian ones are read")
    shards: dict[int, bytes] = {}
    out = {}
    for key, value in records.items():
        name = key.decode("utf-8", "replace")
        entry = _parse(entry_cls, value, index, name)
        if entry.slices or entry.dtype not in DTYPES:
            continue
        if entry.shard_id not in shards:
            shards[entry.shard_id] = _shard(prefix, entry.shard_id, header.num_shards)
        out[name] = _tensor(entry, shards[entry.shard_id], prefix, name)
    return out


def _parse(cls: type, data: bytes, index: Path, what: str):
    from google.protobuf.message import DecodeError

    message = cls()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise UserError(f"{index}: the entry of {what or 'the header'} is not a bundle entry; damaged index") from exc
    return message


def _shard(prefix: Path, shard: int, count: int) -> bytes:
    path = Path(f"{prefix}.data-{shard:05d}-of-{count:05d}")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read checkpoint data {path}: {exc.strerror or exc}") from exc


def _tensor(entry, data: bytes, prefix: Path, name: str) -> np.ndarray:
    shape = [d.size for d in entry.shape.dim]
    if entry.offset + entry.size > len(data):
        raise UserError(f"{prefix}.data-{entry.shard_id:05d}-*: truncated ({len(data)} bytes; variable {name} needs "
                        f"{entry.offset + entry.size})")
    dtype = DTYPES[entry.dtype]
    raw = data[entry.offset:entry.offset + entry.size]
    if dtype == "bfloat16":
        value = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        value = np.frombuffer(raw, np.dtype(dtype).newbyteorder("<"))
    if value.size != int(np.prod(shape)):
        raise UserError(f"{prefix}: variable {name} holds {value.size} values for shape {shape}; damaged checkpoint")
    return value.reshape(shape).astype(value.dtype.newbyteorder("="))


def sstable_records(table: bytes, path: Path):
    """The (key, value) records of a LevelDB table, block by block in key order; one line if it is cut or not a table."""
    if len(table) < FOOTER_SIZE or struct.unpack("<Q", table[-8:])[0] != TABLE_MAGIC:
        raise UserError(f"{path}: not a TensorFlow checkpoint index, or truncated (no table footer)")
    footer = table[-FOOTER_SIZE:]
    (_, _), pos = _handle(footer, 0, path)  # the metaindex block: empty in TF's bundles
    (offset, size), _ = _handle(footer, pos, path)
    for _, handle in _block_records(_block(table, offset, size, path), path):
        (offset, size), _ = _handle(handle, 0, path)
        yield from _block_records(_block(table, offset, size, path), path)


def _block(table: bytes, offset: int, size: int, path: Path) -> bytes:
    if offset + size + BLOCK_TRAILER > len(table) - FOOTER_SIZE:
        raise UserError(f"{path}: truncated (a block at {offset} runs past the end)")
    if table[offset + size] != 0:
        raise UserError(f"{path}: compressed table blocks (type {table[offset + size]}); TensorFlow writes them "
                        "uncompressed")
    return table[offset:offset + size]


def _block_records(block: bytes, path: Path):
    """A block's records: (shared, unshared, value length) varints, the key's unshared tail, the value; the restart
    array (uint32 offsets and their count) ends the block."""
    if len(block) < 4:
        raise UserError(f"{path}: damaged table block")
    restarts = struct.unpack("<I", block[-4:])[0]
    end = len(block) - 4 - 4 * restarts
    if end < 0:
        raise UserError(f"{path}: damaged table block (restart count {restarts})")
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos, path)
        unshared, pos = _varint(block, pos, path)
        length, pos = _varint(block, pos, path)
        if shared > len(key) or pos + unshared + length > end:
            raise UserError(f"{path}: damaged table block (a record runs past its block)")
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        yield key, block[pos:pos + length]
        pos += length


def _handle(data: bytes, pos: int, path: Path) -> tuple[tuple[int, int], int]:
    offset, pos = _varint(data, pos, path)
    size, pos = _varint(data, pos, path)
    return (offset, size), pos


def _varint(data: bytes, pos: int, path: Path) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise UserError(f"{path}: damaged table (a varint runs past its block)")
