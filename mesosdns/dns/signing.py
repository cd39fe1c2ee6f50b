"""TSIG (RFC 8945): verify signed requests, sign replies and transfers.

The record is read and written here in wire form; the MAC itself is
computed by dnspython's ``dns.tsig`` (``sign`` / ``validate``), which
implements the digest of single messages and of multi-message transfers
(each later message digests the previous MAC, itself and the timers).

The key is the one of ``zoneTransfer.tsig`` (`TSIGKey`). A request signed
with another key, or with another algorithm, gets BADKEY; a MAC that does
not verify BADSIG (both unsigned replies, RCODE NOTAUTH); a valid MAC signed
outside the fudge BADTIME (signed, the server's time in Other Data).

MAC truncation (RFC 8945 section 5.2.2.1): a MAC longer than the
algorithm's output, or shorter than the larger of 10 octets and half of
it, is FORMERR; one truncated within those limits is checked on the
octets it has (BADSIG when they do not match, BADTIME out of the fudge)
and then refused as BADTRUNC (signed, RFC 8945 sections 5.2.4 and 5.3.2):
the local policy accepts whole MACs only, as dnspython's own verification
does.
"""

from __future__ import annotations

import hmac
import struct
import time
from dataclasses import dataclass
from typing import Any, Final

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig

from mesosdns.dns import wire
from mesosdns.dns.settings import TSIGKey

TYPE_TSIG: Final = 250
CLASS_ANY: Final = 255
RCODE_NOTAUTH: Final = 9
# TSIG errors (RFC 8945 section 3)
BADSIG: Final = 16
BADKEY: Final = 17
BADTIME: Final = 18
BADTRUNC: Final = 22
# Signer.check's verdict on a MAC of a size RFC 8945 forbids: FORMERR
MAC_SIZE_FORMERR: Final = -1
FUDGE: Final = 300  # seconds, as RFC 8945 recommends

# dnspython's TSIG functions and rdata class (untyped)
_tsig: Any = dns.tsig
_TSIG: Any = dns.rdtypes.ANY.TSIG.TSIG


@dataclass(slots=True)
class RequestTSIG:
    """The TSIG record of a request."""

    start: int  # its offset in the message
    owner: bytes  # the key name, wire form, lower case
    algorithm: bytes  # wire form, lower case
    time_signed: int
    fudge: int
    mac: bytes
    original_id: int
    error: int
    other: bytes


def read_tsig(data: bytes, start: int) -> RequestTSIG:
    """The TSIG record at ``start`` (the message's last record); raises
    ValueError when it is malformed."""
    owner, off = wire.read_name(data, start)
    if off + 10 > len(data):
        raise ValueError("truncated TSIG record")
    rtype, rclass, _ttl, rdlen = struct.unpack_from(">HHIH", data, off)
    off += 10
    end = off + rdlen
    if rtype != TYPE_TSIG or rclass != CLASS_ANY or end != len(data):
        raise ValueError("not a TSIG record at the end")
    algorithm, off = wire.read_name(data, off)
    if off + 10 > end:
        raise ValueError("truncated TSIG rdata")
    hi, lo, fudge, mac_len = struct.unpack_from(">HIHH", data, off)
    off += 10
    if off + mac_len + 6 > end:
        raise ValueError("truncated TSIG MAC")
    mac = data[off : off + mac_len]
    off += mac_len
    original_id, error, other_len = struct.unpack_from(">HHH", data, off)
    off += 6
    if off + other_len != end:
        raise ValueError("bad TSIG other data")
    return RequestTSIG(
        start, owner.lower(), algorithm.lower(), (hi << 32) | lo, fudge, mac, original_id,
        error, data[off:end],
    )


def _rdata(
    algorithm: dns.name.Name, time_signed: int, fudge: int, mac: bytes, original_id: int,
    error: int, other: bytes,
) -> Any:
    return _TSIG(
        dns.rdataclass.ANY, dns.rdatatype.TSIG, algorithm, time_signed, fudge, mac,
        original_id, error, other,
    )


def tsig_record(
    owner: bytes, algorithm: bytes, time_signed: int, fudge: int, mac: bytes,
    original_id: int, error: int, other: bytes,
) -> bytes:
    """A TSIG record in wire form (names uncompressed)."""
    rdata = (
        algorithm
        + struct.pack(">HIHH", time_signed >> 32 & 0xFFFF, time_signed & 0xFFFFFFFF, fudge,
                      len(mac))
        + mac
        + struct.pack(">HHH", original_id, error, len(other))
        + other
    )
    return owner + struct.pack(">HHIH", TYPE_TSIG, CLASS_ANY, 0, len(rdata)) + rdata


def with_record(message: bytes, rr: bytes) -> bytes:
    """``message`` with ``rr`` appended to its additional section."""
    arcount = (message[10] << 8 | message[11]) + 1
    return message[:10] + struct.pack(">H", arcount) + message[12:] + rr


def error_reply(data: bytes, question: bytes, t: RequestTSIG, error: int) -> bytes:
    """The unsigned NOTAUTH reply for BADKEY or BADSIG (the request's key
    name and algorithm, an empty MAC, the error)."""
    head = wire.error_reply(data, RCODE_NOTAUTH, question)
    rr = tsig_record(t.owner, t.algorithm, t.time_signed, t.fudge, b"", t.original_id, error, b"")
    return with_record(head, rr)


class Signer:
    """Verifies and signs with one key."""

    def __init__(self, key: TSIGKey) -> None:
        self.key = dns.tsig.Key(key.name, key.secret, key.algorithm)
        self.owner = wire.text_to_wire(key.name) or b"\x00"
        self.algorithm: bytes = self.key.algorithm.canonicalize().to_wire() or b"\x00"
        size = dns.tsig.mac_sizes.get(self.key.algorithm, 64)
        self.mac_size = size
        self.min_mac = max(10, size // 2)  # shorter: FORMERR (RFC 8945 section 5.2.2.1)
        # the room a TSIG record of ours takes (BADTIME's Other Data included)
        self.room = len(self.owner) + 10 + len(self.algorithm) + 16 + size + 6

    def check(self, data: bytes, t: RequestTSIG, now: int | None = None) -> int:
        """0 when the request verifies, else the TSIG error: BADKEY,
        BADSIG, BADTIME or BADTRUNC; `MAC_SIZE_FORMERR` for a MAC of a size
        no signer may send."""
        if t.owner != self.owner or t.algorithm != self.algorithm:
            return BADKEY
        if not self.min_mac <= len(t.mac) <= self.mac_size:
            return MAC_SIZE_FORMERR
        now = int(time.time()) if now is None else now
        if len(t.mac) < self.mac_size:
            return self._check_truncated(data, t, now)
        try:  # (dnspython checks the fields too: an error code over 4095 is refused)
            rdata = _rdata(self.key.algorithm, t.time_signed, t.fudge, t.mac, t.original_id,
                           t.error, t.other)
            _tsig.validate(data, self.key, self.key.name, rdata, now, b"", t.start)
        except dns.tsig.BadTime:
            return BADTIME
        except (dns.tsig.BadSignature, dns.tsig.PeerError, dns.exception.DNSException,
                ValueError):
            return BADSIG
        return 0

    def _check_truncated(self, data: bytes, t: RequestTSIG, now: int) -> int:
        """A MAC truncated within the limits: its octets checked against the
        start of the MAC we compute (dnspython's ``sign`` over the message
        without its TSIG record), then the time; then BADTRUNC."""
        if t.error != 0:
            return BADSIG  # (as dnspython's validate: a request carries no error)
        arcount = (data[10] << 8 | data[11]) - 1
        unsigned = data[:10] + struct.pack(">H", arcount) + data[12 : t.start]
        try:
            rdata = _rdata(self.key.algorithm, t.time_signed, t.fudge, b"", t.original_id,
                           t.error, t.other)
            full, _ = _tsig.sign(unsigned, self.key, rdata, t.time_signed, b"")
        except (dns.exception.DNSException, ValueError):
            return BADSIG
        if not hmac.compare_digest(bytes(full.mac[: len(t.mac)]), t.mac):
            return BADSIG
        if abs(t.time_signed - now) > t.fudge:
            return BADTIME
        return BADTRUNC

    def sign(
        self,
        message: bytes,
        request_mac: bytes,
        original_id: int,
        *,
        ctx: Any = None,
        multi: bool = False,
        error: int = 0,
        time_signed: int | None = None,
        other: bytes = b"",
    ) -> tuple[bytes, Any]:
        """``message`` with our TSIG record appended; and the context that
        signs the next message of a transfer (``multi``; pass it back as
        ``ctx``, the first message with None)."""
        now = int(time.time()) if time_signed is None else time_signed
        rdata = _rdata(self.key.algorithm, now, FUDGE, b"", original_id, error, other)
        signed, ctx = _tsig.sign(message, self.key, rdata, now, request_mac, ctx, multi)
        rr = tsig_record(self.owner, self.algorithm, now, FUDGE, signed.mac, original_id,
                         error, other)
        return with_record(message, rr), ctx

    def badtrunc(self, data: bytes, question: bytes, t: RequestTSIG) -> bytes:
        """The signed NOTAUTH / BADTRUNC reply (RFC 8945 section 5.3.2: an
        error of the local truncation policy is signed, the request's
        truncated MAC in the digest)."""
        head = wire.error_reply(data, RCODE_NOTAUTH, question)
        return self.sign(head, t.mac, t.original_id, error=BADTRUNC)[0]

    def badtime(self, data: bytes, question: bytes, t: RequestTSIG) -> bytes:
        """The signed NOTAUTH / BADTIME reply: the request's time signed, the
        server's time in Other Data (RFC 8945 section 5.2.3)."""
        head = wire.error_reply(data, RCODE_NOTAUTH, question)
        now = int(time.time())
        other = struct.pack(">HI", now >> 32 & 0xFFFF, now & 0xFFFFFFFF)
        signed, _ = self.sign(head, t.mac, t.original_id, error=BADTIME,
                              time_signed=t.time_signed, other=other)
        return signed
