"""A minimal Forward protocol client for the integration tests: mutual TLS (ssl), the
Forward mode with a `chunk` option, and the ack it waits for. The msgpack encoder and
the ack decoder are written here because Python's standard library has no msgpack;
they cover only what the tests send and read (nil, bool, int, str, list, dict).

The point is to know exactly WHICH events were acknowledged: `vigil send` prints only
a count. Standard library only.
"""
import socket
import ssl
import struct


def pack(v, out=None):
    """msgpack encoding of v (None, bool, int, str, bytes, list, tuple, dict)."""
    out = bytearray() if out is None else out
    if v is None:
        out.append(0xc0)
    elif v is True:
        out.append(0xc3)
    elif v is False:
        out.append(0xc2)
    elif isinstance(v, int):
        if 0 <= v < 0x80:
            out.append(v)
        elif -32 <= v < 0:
            out.append(v & 0xff)
        elif 0 <= v <= 0xffffffff:
            out += b"\xce" + struct.pack(">I", v)
        elif v >= 0:
            out += b"\xcf" + struct.pack(">Q", v)
        else:
            out += b"\xd3" + struct.pack(">q", v)
    elif isinstance(v, str):
        b = v.encode()
        n = len(b)
        if n < 32:
            out.append(0xa0 | n)
        elif n < 0x100:
            out += b"\xd9" + bytes([n])
        elif n < 0x10000:
            out += b"\xda" + struct.pack(">H", n)
        else:
            out += b"\xdb" + struct.pack(">I", n)
        out += b
    elif isinstance(v, (bytes, bytearray)):
        n = len(v)
        out += (b"\xc4" + bytes([n])) if n < 0x100 else (b"\xc6" + struct.pack(">I", n))
        out += v
    elif isinstance(v, (list, tuple)):
        n = len(v)
        out += bytes([0x90 | n]) if n < 16 else (
            b"\xdc" + struct.pack(">H", n) if n < 0x10000 else b"\xdd" + struct.pack(">I", n))
        for x in v:
            pack(x, out)
    elif isinstance(v, dict):
        n = len(v)
        out += bytes([0x80 | n]) if n < 16 else (
            b"\xde" + struct.pack(">H", n) if n < 0x10000 else b"\xdf" + struct.pack(">I", n))
        for k, x in v.items():
            pack(k, out)
            pack(x, out)
    else:
        raise TypeError("cannot pack %r" % (v,))
    return bytes(out)


def _unpack_str(b, i):
    """Decodes one msgpack str at b[i:]; returns (str, next index) or None if cut off."""
    if i >= len(b):
        return None
    t = b[i]
    if 0xa0 <= t <= 0xbf:
        n, i = t & 0x1f, i + 1
    elif t == 0xd9 and i + 2 <= len(b):
        n, i = b[i + 1], i + 2
    elif t == 0xda and i + 3 <= len(b):
        n, i = struct.unpack(">H", b[i + 1:i + 3])[0], i + 3
    elif t in (0xd9, 0xda):
        return None
    else:
        raise ValueError("not a msgpack str: 0x%02x" % t)
    if i + n > len(b):
        return None
    return b[i:i + n].decode(), i + n


def _unpack_uint(b, i):
    """Decodes one msgpack unsigned int at b[i:]; (int, next index) or None if cut off."""
    if i >= len(b):
        return None
    t = b[i]
    if t < 0x80:
        return t, i + 1
    size = {0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8}.get(t)
    if size is None:
        raise ValueError("not a msgpack uint: 0x%02x" % t)
    if i + 1 + size > len(b):
        return None
    return int.from_bytes(b[i + 1:i + 1 + size], "big"), i + 1 + size


def unpack_ack_full(b):
    """Parses one {"ack": id} or {"ack": id, "rejected": n} (vigild says how many entries
    it kept as rejected_input records) at the front of b; returns (id, rejected, bytes
    used) or None when more bytes are needed. Raises ValueError for anything else."""
    if not b:
        return None
    if b[0] not in (0x81, 0x82):
        raise ValueError("expected an ack map, got 0x%02x" % b[0])
    i, ack, rejected = 1, None, 0
    for _ in range(b[0] & 0x0f):
        k = _unpack_str(b, i)
        if k is None:
            return None
        if k[0] == "ack":
            v = _unpack_str(b, k[1])
        elif k[0] == "rejected":
            v = _unpack_uint(b, k[1])
        else:
            raise ValueError("unexpected key %r" % k[0])
        if v is None:
            return None
        if k[0] == "ack":
            ack = v[0]
        else:
            rejected = v[0]
        i = v[1]
    if ack is None:
        raise ValueError("no 'ack' key")
    return ack, rejected, i


def unpack_ack(b):
    """Parses one ack at the front of b; returns (id, bytes used) or None when more bytes
    are needed. Raises ValueError for anything else."""
    got = unpack_ack_full(b)
    return None if got is None else (got[0], got[2])


class ForwardClient:
    """One TLS connection to vigild's Forward listener."""

    def __init__(self, port, ca, cert, key, timeout=10.0, host="127.0.0.1"):
        ctx = ssl.create_default_context(cafile=ca)
        ctx.load_cert_chain(cert, key)
        raw = socket.create_connection((host, port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.sock.settimeout(timeout)
        self.buf = b""

    def send_chunk(self, tag, entries, chunk_id):
        """Sends [tag, [[time, record]...], {"chunk": chunk_id}] (Forward mode)."""
        self.sock.sendall(pack([tag, [[t, r] for t, r in entries], {"chunk": chunk_id}]))

    def wait_ack(self, with_rejected=False):
        """Returns the next acked chunk id (with_rejected: (id, rejected entries));
        raises ConnectionError when the server closes without one (e.g. it refused to
        store the events, or died)."""
        while True:
            got = unpack_ack_full(self.buf)
            if got is not None:
                self.buf = self.buf[got[2]:]
                return (got[0], got[1]) if with_rejected else got[0]
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("closed by vigild without an ack")
            self.buf += data

    def send_raw(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
