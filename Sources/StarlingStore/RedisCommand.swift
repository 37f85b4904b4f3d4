// RedisCommand: one command in RESP (`*<n>` then `$<len>` and the bytes of each argument),
// written argument by argument straight into one buffer. A publish used to build an array
// per argument, an array of them, then the RESP text from those (about 25 allocations per
// publish on the broker's side, callgrind); now it is one buffer, grown in place.
//
// Invariant: `bytes[start...]` is always one complete command of the arguments added so
// far. The count line is written right-aligned into room kept at the buffer's front, so
// adding an argument never moves the ones before it.
import StarlingCore

struct RedisCommand {
    private(set) var bytes: [UInt8]
    /// Where the `*<n>\r\n` line begins.
    private(set) var start: Int
    private(set) var count = 0
    /// `*`, up to 20 digits, CRLF.
    private static let countRoom = 23

    /// `capacity`: the bytes of the arguments expected (a hint; the buffer grows past it).
    init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(Self.countRoom + capacity)
        bytes.append(contentsOf: repeatElement(0, count: Self.countRoom))
        start = 0
        writeCount()
    }

    init(_ arguments: String...) {
        self.init(capacity: arguments.reduce(0) { $0 + $1.utf8.count + 16 })
        for a in arguments { add(a) }
    }

    init(_ arguments: [String]) {
        self.init(capacity: arguments.reduce(0) { $0 + $1.utf8.count + 16 })
        for a in arguments { add(a) }
    }

    mutating func add(_ argument: String) {
        var a = argument
        a.withUTF8 { add(bytes: UnsafeRawBufferPointer($0)) }
    }

    mutating func add(_ argument: StaticString) {
        add(bytes: UnsafeRawBufferPointer(start: argument.utf8Start, count: argument.utf8CodeUnitCount))
    }

    /// One argument made of three pieces (a key's prefix, a name, its suffix).
    mutating func add(_ prefix: StaticString, _ middle: String, _ suffix: StaticString) {
        var m = middle
        m.withUTF8 { b in
            let length = prefix.utf8CodeUnitCount + b.count + suffix.utf8CodeUnitCount
            bytes.append(0x24)
            appendDecimal(length)
            bytes.append(13); bytes.append(10)
            bytes.append(contentsOf: UnsafeRawBufferPointer(start: prefix.utf8Start, count: prefix.utf8CodeUnitCount))
            bytes.append(contentsOf: b)
            bytes.append(contentsOf: UnsafeRawBufferPointer(start: suffix.utf8Start, count: suffix.utf8CodeUnitCount))
            bytes.append(13); bytes.append(10)
        }
        count += 1
        writeCount()
    }

    mutating func add(_ argument: [UInt8]) {
        argument.withUnsafeBytes { add(bytes: $0) }
    }

    /// A whole number as its decimal digits.
    mutating func add(_ n: Int) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes, enough for any Int
        let length = withUnsafeMutableBytes(of: &digits) { Self.decimal(n, into: $0) }
        withUnsafeBytes(of: &digits) { add(bytes: UnsafeRawBufferPointer(rebasing: $0[(24 - length)...])) }
    }

    /// `<ms>-<seq>`, or `(<ms>-<seq>` with `exclusive` (XRANGE's exclusive start), with no
    /// String made on the way.
    mutating func add(_ id: EventID, exclusive: Bool = false) {
        var text: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)  // 48 bytes ≥ 1 + 20 + 1 + 20
        let length = withUnsafeMutableBytes(of: &text) { b -> Int in
            var k = b.count - Self.digits(id.seq, into: b) - 1
            b[k] = 0x2D
            k -= Self.digits(id.ms, into: UnsafeMutableRawBufferPointer(rebasing: b[..<k]))
            if exclusive { k -= 1; b[k] = 0x28 }
            return b.count - k
        }
        withUnsafeBytes(of: &text) { add(bytes: UnsafeRawBufferPointer(rebasing: $0[(48 - length)...])) }
    }

    mutating func add(bytes argument: UnsafeRawBufferPointer) {
        bytes.append(0x24)
        appendDecimal(argument.count)
        bytes.append(13); bytes.append(10)
        bytes.append(contentsOf: argument)
        bytes.append(13); bytes.append(10)
        count += 1
        writeCount()
    }

    /// The same command with its first `replacing` arguments replaced by `head` (the
    /// publish script's `EVALSHA <sha>` becoming `EVAL <source>` after NOSCRIPT).
    func replacingHead(_ replacing: Int, with head: [String]) -> RedisCommand {
        var k = start
        // Skip the count line, then `replacing` arguments: `$<len>\r\n<bytes>\r\n`.
        while bytes[k] != 10 { k += 1 }
        k += 1
        for _ in 0..<replacing {
            var length = 0
            k += 1  // `$`
            while bytes[k] != 13 { length = length * 10 + Int(bytes[k] - 48); k += 1 }
            k += 2 + length + 2
        }
        var c = RedisCommand(capacity: bytes.count - k + head.reduce(0) { $0 + $1.utf8.count + 16 })
        for h in head { c.add(h) }
        c.bytes.append(contentsOf: bytes[k...])
        c.count += count - replacing
        c.writeCount()
        return c
    }

    private mutating func appendDecimal(_ n: Int) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        let length = withUnsafeMutableBytes(of: &digits) { Self.decimal(n, into: $0) }
        withUnsafeBytes(of: &digits) { bytes.append(contentsOf: $0[(24 - length)...]) }
    }

    private mutating func writeCount() {
        var n = count
        var k = Self.countRoom - 2
        bytes[k] = 13; bytes[k + 1] = 10
        repeat {
            k -= 1
            bytes[k] = UInt8(48 + n % 10)
            n /= 10
        } while n > 0
        k -= 1
        bytes[k] = 0x2A
        start = k
    }

    /// Writes `n`'s digits (and sign) right-aligned at the end of `buffer`; returns how many.
    private static func decimal(_ n: Int, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let k = buffer.count - digits(UInt64(n.magnitude), into: buffer)
        guard n < 0 else { return buffer.count - k }
        buffer[k - 1] = 0x2D
        return buffer.count - k + 1
    }

    private static func digits(_ n: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var v = n
        var k = buffer.count
        repeat {
            k -= 1
            buffer[k] = UInt8(48 + v % 10)
            v /= 10
        } while v > 0
        return buffer.count - k
    }

    /// The command's bytes, for the connection to hand to its socket.
    func withEncoded<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        bytes.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[start...])) }
    }
}
