#!/usr/bin/env python3
"""st_reader: an independent safetensors reader (Python 3 stdlib only) used to
check that files written by gatelab's st_write open outside gatelab.

It parses the file itself with json + struct (no gatelab code), validates the
header (length, JSON, dtype F32, shapes, offsets contiguous and in bounds,
numel*4 == byte span), prints a listing, and checks optional expectations:

    python3 tests/st_reader.py FILE
        [--tensor NAME (--expect-hex HEX | --expect-floats a,b,c...)]
        [--meta KEY=VALUE ...]

Exit status: 0 valid and every expectation met, 1 invalid file or failed
expectation (with a one-line message on stderr), 2 usage error.
"""
import argparse
import json
import struct
import sys

MAX_HEADER = 100 * 1000 * 1000


class Invalid(Exception):
    pass


def no_duplicates(pairs):
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise Invalid("duplicate key %r" % k)
        seen[k] = v
    return seen


def reject_constant(name):
    raise Invalid("non-standard JSON constant %s" % name)


def product(dims):
    n = 1
    for d in dims:
        n *= d
    return n


def is_uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def parse(blob):
    """Returns (header_len, metadata dict, [(name, shape, begin, end)], data bytes)."""
    if len(blob) < 8:
        raise Invalid("truncated: %d bytes" % len(blob))
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise Invalid("header length %d exceeds file size %d" % (n, len(blob)))
    if n > MAX_HEADER:
        raise Invalid("header length %d exceeds limit" % n)
    try:
        text = blob[8:8 + n].decode("utf-8")
        header = json.loads(text, object_pairs_hook=no_duplicates,
                            parse_constant=reject_constant)
    except (UnicodeDecodeError, ValueError) as e:
        raise Invalid("header JSON: %s" % e)
    if not isinstance(header, dict):
        raise Invalid("header is not a JSON object")
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict):
        raise Invalid("__metadata__ is not an object")
    for k, v in meta.items():
        if not isinstance(v, str):
            raise Invalid("metadata %r: value is not a string" % k)
    tensors = []
    for name, info in header.items():
        if not isinstance(info, dict):
            raise Invalid("tensor %r: entry is not an object" % name)
        if set(info) != {"dtype", "shape", "data_offsets"}:
            raise Invalid("tensor %r: keys %s" % (name, sorted(info)))
        if info["dtype"] != "F32":
            raise Invalid("tensor %r: dtype %s not supported" % (name, info["dtype"]))
        shape, offs = info["shape"], info["data_offsets"]
        if not isinstance(shape, list) or not all(is_uint(d) for d in shape):
            raise Invalid("tensor %r: bad shape %r" % (name, shape))
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(is_uint(o) for o in offs)):
            raise Invalid("tensor %r: bad data_offsets %r" % (name, offs))
        begin, end = offs
        if end < begin or end > len(data):
            raise Invalid("tensor %r: data_offsets %r out of bounds (data %d bytes)"
                          % (name, offs, len(data)))
        if end - begin != product(shape) * 4:
            raise Invalid("tensor %r: %d bytes for shape %r" % (name, end - begin, shape))
        tensors.append((name, shape, begin, end))
    at = 0
    for name, _, begin, end in sorted(tensors, key=lambda t: (t[2], t[3])):
        if begin != at:
            raise Invalid("tensor %r: offsets not contiguous (begin %d, expected %d)"
                          % (name, begin, at))
        at = end
    if at != len(data):
        raise Invalid("data section is %d bytes but tensors cover %d" % (len(data), at))
    return n, meta, tensors, data


def floats(raw):
    return struct.unpack("<%df" % (len(raw) // 4), raw)


def main():
    ap = argparse.ArgumentParser(description="independent safetensors checker")
    ap.add_argument("file")
    ap.add_argument("--tensor", help="tensor the expectation applies to")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--expect-hex", help="the tensor's raw bytes, as hex")
    group.add_argument("--expect-floats", help="the tensor's values, comma-separated")
    ap.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                    help="expected metadata entry (repeatable)")
    # "--expect-floats -1,2" would read -1,2 as an option: glue it to its flag.
    argv = sys.argv[1:]
    for i in range(len(argv) - 1):
        if argv[i] in ("--expect-floats", "--expect-hex"):
            argv[i:i + 2] = [argv[i] + "=" + argv[i + 1]] + [""]
    args = ap.parse_args([a for a in argv if a != ""])
    if (args.expect_hex is not None or args.expect_floats is not None) and not args.tensor:
        ap.error("--expect-hex/--expect-floats need --tensor")

    try:
        with open(args.file, "rb") as f:
            blob = f.read()
        n, meta, tensors, data = parse(blob)
    except (OSError, Invalid) as e:
        print("st_reader: %s: %s" % (args.file, e), file=sys.stderr)
        return 1

    padded = "padded" if (8 + n) % 8 == 0 else "unpadded"
    print("%s: header %d bytes (%s), %d tensors, %d metadata, data %d bytes"
          % (args.file, n, padded, len(tensors), len(meta), len(data)))
    for k, v in meta.items():
        print("  meta %s = %r" % (k, v))
    for name, shape, begin, end in tensors:
        first = ", ".join("%g" % x for x in floats(data[begin:min(end, begin + 16)]))
        print("  %-32s %-16s [%d,%d) %s" % (name, shape, begin, end, first))

    failed = []
    if args.tensor:
        found = [t for t in tensors if t[0] == args.tensor]
        if not found:
            failed.append("tensor %r not found" % args.tensor)
        else:
            _, _, begin, end = found[0]
            raw = data[begin:end]
            if args.expect_hex is not None:
                try:
                    want = bytes.fromhex(args.expect_hex)
                except ValueError:
                    print("st_reader: --expect-hex is not hex", file=sys.stderr)
                    return 2
                if raw != want:
                    failed.append("tensor %r bytes %s, expected %s"
                                  % (args.tensor, raw.hex(), want.hex()))
            if args.expect_floats is not None:
                try:
                    vals = [float(x) for x in args.expect_floats.split(",") if x.strip()]
                except ValueError:
                    print("st_reader: --expect-floats is not a list of numbers",
                          file=sys.stderr)
                    return 2
                want = struct.pack("<%df" % len(vals), *vals)
                if raw != want:
                    failed.append("tensor %r values %s, expected %s"
                                  % (args.tensor, list(floats(raw)), vals))
    for kv in args.meta:
        if "=" not in kv:
            print("st_reader: --meta needs KEY=VALUE, got %r" % kv, file=sys.stderr)
            return 2
        k, v = kv.split("=", 1)
        if meta.get(k) != v:
            failed.append("metadata %r is %r, expected %r" % (k, meta.get(k), v))
    for msg in failed:
        print("st_reader: %s: %s" % (args.file, msg), file=sys.stderr)
    if failed:
        return 1
    print("st_reader: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
