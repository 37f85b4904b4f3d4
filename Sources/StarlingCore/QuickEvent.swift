// QuickEvent: the publish body of the AI-token shape, `{"data":…}` or
// `{"event":"…","data":…}`, read without building a JSON tree. Every publish of that
// shape passes here, so it makes one String (the data) and nothing else.
//
// It answers only when its result is exactly what the general path (JSONParser, then
// PublishBody.draft, then JSONWriter.compact) would give: a `data` value that is already
// compact (no whitespace outside strings) and whose strings hold no escapes re-emits as
// its own bytes. Anything else (other keys, a repeated key, escapes, whitespace inside
// the value, bad JSON) returns nil and the general path reads the body, errors included.

enum QuickEvent {
    /// The draft for a body of the simple shape, or nil to take the general path.
    static func parse(_ b: UnsafeBufferPointer<UInt8>) -> EventDraft? {
        var r = Reader(b: b)
        r.skipSpace()
        guard r.take(0x7B) else { return nil }
        var name: Range<Int>?
        var data: Range<Int>?
        var dataIsString = false
        r.skipSpace()
        while true {
            guard let key = r.plainString() else { return nil }
            r.skipSpace()
            guard r.take(0x3A) else { return nil }
            r.skipSpace()
            if r.keyIs(key, "data"), data == nil {
                dataIsString = r.peek == 0x22
                if dataIsString {
                    guard let s = r.plainString() else { return nil }
                    data = s
                } else {
                    let start = r.i
                    guard r.compactValue(depth: 0) else { return nil }
                    data = start..<r.i
                }
            } else if r.keyIs(key, "event"), name == nil {
                guard let s = r.plainString() else { return nil }
                name = s
            } else {
                return nil
            }
            r.skipSpace()
            if r.take(0x2C) { r.skipSpace(); continue }
            guard r.take(0x7D) else { return nil }
            break
        }
        r.skipSpace()
        guard r.i == b.count, let data else { return nil }
        // Strings may hold any UTF-8; the general path refuses invalid sequences. Validated
        // once, while the String is made.
        guard let text = UTF8Text.string(UnsafeBufferPointer(rebasing: b[data])) else { return nil }
        var eventName = "message"
        if let name {
            guard let n = UTF8Text.string(UnsafeBufferPointer(rebasing: b[name])) else { return nil }
            eventName = n
        }
        return EventDraft(name: eventName, data: dataIsString ? .text(text) : .json(text))
    }

    struct Reader {
        let b: UnsafeBufferPointer<UInt8>
        var i = 0

        var peek: UInt8? { i < b.count ? b[i] : nil }

        mutating func take(_ c: UInt8) -> Bool {
            guard i < b.count, b[i] == c else { return false }
            i += 1
            return true
        }

        mutating func skipSpace() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        }

        func keyIs(_ key: Range<Int>, _ word: StaticString) -> Bool {
            key.count == word.utf8CodeUnitCount && memcmp(b.baseAddress! + key.lowerBound, word.utf8Start, key.count) == 0
        }

        /// A string with no escape and no control character: the range between its quotes.
        mutating func plainString() -> Range<Int>? {
            guard take(0x22) else { return nil }
            let start = i
            // Eight bytes a step while none is a quote, a backslash or a control byte (by
            // hand: an event's text is most of every publish body), then byte by byte.
            while i + 8 <= b.count, !Self.mayEndString(UnsafeRawPointer(b.baseAddress! + i).loadUnaligned(as: UInt64.self)) {
                i += 8
            }
            while i < b.count {
                let c = b[i]
                if c == 0x22 { i += 1; return start..<(i - 1) }
                if c == 0x5C || c < 0x20 { return nil }
                i += 1
            }
            return nil
        }

        /// Whether any of the eight bytes of `w` is `"`, `\` or below 0x20 (ByteWords).
        @inline(__always) static func mayEndString(_ w: UInt64) -> Bool {
            ByteWords.equal(0x22, in: w) | ByteWords.equal(0x5C, in: w) | ByteWords.below(0x20, in: w) != 0
        }

        /// A JSON value with no whitespace and no escaped string, whose text is therefore
        /// its own compact form. Deep nesting is left to the general parser.
        mutating func compactValue(depth: Int) -> Bool {
            guard depth < 32, i < b.count else { return false }
            switch b[i] {
            case 0x22: return plainString() != nil
            case 0x7B:
                i += 1
                if take(0x7D) { return true }
                repeat {
                    guard plainString() != nil, take(0x3A), compactValue(depth: depth + 1) else { return false }
                } while take(0x2C)
                return take(0x7D)
            case 0x5B:
                i += 1
                if take(0x5D) { return true }
                repeat {
                    guard compactValue(depth: depth + 1) else { return false }
                } while take(0x2C)
                return take(0x5D)
            case 0x74: return word("true")
            case 0x66: return word("false")
            case 0x6E: return word("null")
            case 0x2D, 0x30...0x39: return number()
            default: return false
            }
        }

        private mutating func word(_ w: StaticString) -> Bool {
            let n = w.utf8CodeUnitCount
            guard i + n <= b.count, memcmp(b.baseAddress! + i, w.utf8Start, n) == 0 else { return false }
            i += n
            return true
        }

        /// The JSON number grammar, as JSONParser reads it: a lone leading zero ("01" stops
        /// after the 0, and what follows fails as it does there).
        private mutating func number() -> Bool {
            _ = take(0x2D)
            guard i < b.count, isDigit(b[i]) else { return false }
            if b[i] == 0x30 { i += 1 } else { _ = digits() }
            if take(0x2E) { guard digits() else { return false } }
            if i < b.count, b[i] == 0x65 || b[i] == 0x45 {
                i += 1
                if i < b.count, b[i] == 0x2B || b[i] == 0x2D { i += 1 }
                guard digits() else { return false }
            }
            return true
        }

        private mutating func digits() -> Bool {
            let start = i
            while i < b.count, isDigit(b[i]) { i += 1 }
            return i > start
        }

        private func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
