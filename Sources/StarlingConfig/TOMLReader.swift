// TOMLReader: the part of TOML a Starling configuration uses — top-level `key = value`
// lines whose values are strings ("basic" with escapes, 'literal'), integers, floats,
// booleans, or arrays of those (over several lines too), with # comments. Anything else
// TOML allows (tables, multi-line strings, dates, inline tables) is refused with its line
// number rather than misread: Starling's settings are flat. docs/operations.md says why
// this is ours and not a library.

struct TOMLReader {
    struct Entry: Equatable {
        var key: String
        var value: RawValue
        var line: Int
    }

    struct Failure: Error, Equatable {
        var line: Int
        var message: String
    }

    private let bytes: [UInt8]
    private var i = 0
    private var line = 1

    static func read(_ text: String) throws(Failure) -> [Entry] {
        var r = TOMLReader(bytes: Array(text.utf8))
        return try r.document()
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private mutating func document() throws(Failure) -> [Entry] {
        var entries: [Entry] = []
        var seen: Set<String> = []
        while true {
            skipBlankLinesAndComments()
            guard let c = peek else { return entries }
            if c == UInt8(ascii: "[") {
                throw fail("tables ([section]) are not used: Starling's settings are top-level keys")
            }
            let at = line
            let key = try bareKey()
            skipSpaces()
            guard peek == UInt8(ascii: "=") else { throw fail("expected = after \(key)") }
            i += 1
            skipSpaces()
            let value = try self.value(key)
            skipSpaces()
            try endOfLine()
            guard seen.insert(key).inserted else { throw Failure(line: at, message: "\(key) is set twice") }
            entries.append(Entry(key: key, value: value, line: at))
        }
    }

    // MARK: values

    private mutating func value(_ key: String) throws(Failure) -> RawValue {
        guard let c = peek else { throw fail("\(key) has no value") }
        if c == UInt8(ascii: "[") {
            i += 1
            var items: [String] = []
            while true {
                skipWhitespaceAndComments()
                guard let d = peek else { throw fail("the array of \(key) is not closed") }
                if d == UInt8(ascii: "]") { i += 1; return .list(items) }
                guard d != UInt8(ascii: "[") else { throw fail("\(key): nested arrays are not used") }
                items.append(try scalar(key))
                skipWhitespaceAndComments()
                if peek == UInt8(ascii: ",") { i += 1; continue }
                guard peek == UInt8(ascii: "]") else { throw fail("\(key): expected , or ] in the array") }
            }
        }
        return .scalar(try scalar(key))
    }

    /// A string, number or boolean, as text (the setting's kind reads it).
    private mutating func scalar(_ key: String) throws(Failure) -> String {
        guard let c = peek else { throw fail("\(key) has no value") }
        switch c {
        case UInt8(ascii: "\""):
            if starts(with: "\"\"\"") { throw fail("\(key): multi-line strings are not used") }
            return try basicString(key)
        case UInt8(ascii: "'"):
            if starts(with: "'''") { throw fail("\(key): multi-line strings are not used") }
            i += 1
            let start = i
            while let d = peek, d != UInt8(ascii: "'") {
                guard d != 0x0A else { throw fail("\(key): the string is not closed on its line") }
                i += 1
            }
            guard peek != nil else { throw fail("\(key): the string is not closed") }
            defer { i += 1 }
            return String(decoding: bytes[start..<i], as: UTF8.self)
        case UInt8(ascii: "{"):
            throw fail("\(key): inline tables are not used")
        default:
            let start = i
            while let d = peek, !Self.endsBareValue(d) { i += 1 }
            let text = String(decoding: bytes[start..<i], as: UTF8.self)
            if text == "true" || text == "false" { return text }
            var digits = text.filter { $0 != "_" }
            if digits.hasPrefix("+") { digits.removeFirst() }
            if !digits.isEmpty, Int(digits) != nil || Double(digits) != nil, !digits.contains(":") { return digits }
            throw fail("\(key): \(text.isEmpty ? "no value" : "'\(text)' is not a TOML value (quote strings)")")
        }
    }

    private mutating func basicString(_ key: String) throws(Failure) -> String {
        i += 1
        var out: [UInt8] = []
        while let c = peek {
            i += 1
            switch c {
            case UInt8(ascii: "\""):
                return String(decoding: out, as: UTF8.self)
            case 0x0A:
                throw fail("\(key): the string is not closed on its line")
            case UInt8(ascii: "\\"):
                guard let e = peek else { break }
                i += 1
                switch e {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(e)
                case UInt8(ascii: "u"), UInt8(ascii: "U"):
                    let n = e == UInt8(ascii: "u") ? 4 : 8
                    guard i + n <= bytes.count, let v = UInt32(String(decoding: bytes[i..<i + n], as: UTF8.self), radix: 16),
                          let scalar = Unicode.Scalar(v) else { throw fail("\(key): bad \\\(Character(Unicode.Scalar(e))) escape") }
                    i += n
                    out.append(contentsOf: Array(String(Character(scalar)).utf8))
                default:
                    throw fail("\(key): unknown escape \\\(Character(Unicode.Scalar(e)))")
                }
            default:
                out.append(c)
            }
        }
        throw fail("\(key): the string is not closed")
    }

    private static func endsBareValue(_ c: UInt8) -> Bool {
        c == UInt8(ascii: ",") || c == UInt8(ascii: "]") || c == UInt8(ascii: "#") || c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D
    }

    // MARK: lexing

    private var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

    private func starts(with s: String) -> Bool {
        let u = Array(s.utf8)
        return i + u.count <= bytes.count && Array(bytes[i..<i + u.count]) == u
    }

    private mutating func bareKey() throws(Failure) -> String {
        let start = i
        while let c = peek, Self.isKeyByte(c) { i += 1 }
        guard i > start else {
            if peek == UInt8(ascii: "\"") || peek == UInt8(ascii: "'") { throw fail("quoted keys are not used") }
            throw fail("expected a key")
        }
        if peek == UInt8(ascii: ".") { throw fail("dotted keys are not used: Starling's settings are top-level keys") }
        return String(decoding: bytes[start..<i], as: UTF8.self)
    }

    private static func isKeyByte(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F || c == 0x2D
    }

    private mutating func skipSpaces() {
        while let c = peek, c == 0x20 || c == 0x09 { i += 1 }
    }

    private mutating func skipComment() {
        if peek == UInt8(ascii: "#") { while let c = peek, c != 0x0A { i += 1 } }
    }

    private mutating func skipWhitespaceAndComments() {
        while true {
            skipSpaces()
            skipComment()
            if peek == 0x0D { i += 1; continue }
            guard peek == 0x0A else { return }
            i += 1; line += 1
        }
    }

    private mutating func skipBlankLinesAndComments() { skipWhitespaceAndComments() }

    private mutating func endOfLine() throws(Failure) {
        skipComment()
        if peek == 0x0D { i += 1 }
        guard let c = peek else { return }
        guard c == 0x0A else { throw fail("unexpected text after the value") }
        i += 1; line += 1
    }

    private func fail(_ message: String) -> Failure { Failure(line: line, message: message) }
}
