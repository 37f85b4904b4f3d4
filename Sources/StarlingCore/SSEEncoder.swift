// SSEEncoder: the bytes of the text/event-stream format, outbound. Data with line
// breaks (CRLF, CR or LF) becomes several `data:` lines, as the format requires.

public enum SSEEncoder {
    /// `id: …\nevent: …\ndata: …\n\n`; the `event:` line is left out for `message`.
    public static func event(id: String?, name: String, data: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.utf8.count + name.utf8.count + 48)
        if let id {
            out.append(contentsOf: "id: ".utf8)
            out.append(contentsOf: id.utf8)
            out.append(0x0A)
        }
        if name != "message" {
            out.append(contentsOf: "event: ".utf8)
            out.append(contentsOf: name.utf8)
            out.append(0x0A)
        }
        appendData(data, to: &out)
        out.append(0x0A)
        return out
    }

    /// The stored form of an event, `id: <ms>-<seq>\n[event: …\n]data: …\n\n`, written
    /// straight into one SharedBytes: every publish passes here once, so no String is made
    /// for the ID and no intermediate array is copied. Data holding a CR or LF takes the
    /// general path (several `data:` lines).
    public static func encode(id: EventID, name: String, data: String) -> SharedBytes {
        var data = data
        var name = name
        return data.withUTF8 { d in
            let hasBreak = d.count > 0 && (memchr(d.baseAddress!, 0x0A, d.count) != nil || memchr(d.baseAddress!, 0x0D, d.count) != nil)
            guard !hasBreak else {
                return SharedBytes(event(id: id.description, name: name, data: String(decoding: d, as: UTF8.self)))
            }
            return name.withUTF8 { n in
                let named = !(n.count == 7 && memcmp(n.baseAddress!, "message", 7) == 0)
                // "id: " + two 20-digit numbers and "-" + "\n"; "event: " + name + "\n"; "data: " + data + "\n\n".
                let capacity = 4 + 41 + 1 + (named ? 8 + n.count : 0) + 6 + d.count + 2
                return SharedBytes(capacity: capacity) { out in
                    var w = ByteWriter(out)
                    w.put("id: ")
                    w.put(decimal: id.ms)
                    w.put(byte: 0x2D)
                    w.put(decimal: id.seq)
                    w.put(byte: 0x0A)
                    if named {
                        w.put("event: ")
                        w.put(n)
                        w.put(byte: 0x0A)
                    }
                    w.put("data: ")
                    w.put(d)
                    w.put("\n\n")
                    return w.count
                }
            }
        }
    }

    /// One `data:` line per line of `data` (an empty value still gets one line).
    public static func appendData(_ data: String, to out: inout [UInt8]) {
        out.append(contentsOf: "data: ".utf8)
        var previousWasCR = false
        for b in data.utf8 {
            if b == 0x0A {
                if previousWasCR { previousWasCR = false; continue }
                out.append(contentsOf: "\ndata: ".utf8)
            } else if b == 0x0D {
                previousWasCR = true
                out.append(contentsOf: "\ndata: ".utf8)
                continue
            } else {
                out.append(b)
            }
            previousWasCR = false
        }
        out.append(0x0A)
    }

    /// A comment line: invisible to EventSource, keeps proxies and idle timers awake.
    public static func comment(_ text: String) -> [UInt8] { Array(":\(text)\n".utf8) }

    /// The opening bytes of every stream: a reconnect delay and a comment, sent at once.
    public static func opening(retryMs: Int) -> [UInt8] { Array("retry: \(retryMs)\n: starling\n\n".utf8) }
}

/// Appends bytes to a buffer sized beforehand (the caller computed an upper bound);
/// overrunning it is a bug, caught by the precondition. Inlinable: the publish answer and
/// the RESP commands are written with it from other modules, once per publish.
@frozen public struct ByteWriter {
    @usableFromInline let out: UnsafeMutableRawBufferPointer
    /// Bytes written so far.
    public var count: Int { written }
    @usableFromInline var written = 0

    @inlinable public init(_ out: UnsafeMutableRawBufferPointer) { self.out = out }

    @inlinable @inline(__always) public mutating func put(byte: UInt8) {
        precondition(written < out.count, "ByteWriter past its buffer")
        out[written] = byte
        written += 1
    }

    @inlinable public mutating func put(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard bytes.count > 0 else { return }
        precondition(written + bytes.count <= out.count, "ByteWriter past its buffer")
        (out.baseAddress! + written).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        written += bytes.count
    }

    @inlinable public mutating func put(_ text: StaticString) {
        put(UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// `n` in decimal: two digits per division, written backwards into a scratch of 24
    /// bytes (UInt64 has at most 20 digits) and copied once; every event ID and publish
    /// answer has two or more of these, and a 13-digit millisecond time took 26 divisions
    /// one digit at a time. (Counting the digits first to write in place measured slower.)
    @inlinable public mutating func put(decimal n: UInt64) {
        var scratch: (UInt64, UInt64, UInt64) = (0, 0, 0)
        let digits = ByteWriter.pairs.utf8Start
        withUnsafeMutableBytes(of: &scratch) { s in
            var at = 24
            var v = n
            while v >= 100 {
                let r = Int(v % 100)
                v /= 100
                at -= 2
                s[at] = digits[2 * r]
                s[at + 1] = digits[2 * r + 1]
            }
            if v >= 10 {
                at -= 2
                s[at] = digits[2 * Int(v)]
                s[at + 1] = digits[2 * Int(v) + 1]
            } else {
                at -= 1
                s[at] = UInt8(truncatingIfNeeded: 0x30 &+ v)
            }
            put(UnsafeBufferPointer(start: s.baseAddress!.advanced(by: at).assumingMemoryBound(to: UInt8.self), count: 24 - at))
        }
    }

    @usableFromInline static var pairs: StaticString {
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
