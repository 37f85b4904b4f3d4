// RedisCommand: one command in RESP (`*<n>` then `$<len>` and the bytes of each argument),
// written argument by argument straight into one buffer. A publish used to build an array
// per argument, an array of them, then the RESP text from those (about 25 allocations per
// publish on the broker's side, callgrind); now it is one buffer, grown in place.
//
// The arguments follow room kept at the buffer's front for the count line, which is
// written right-aligned there when the bytes are handed out (`withEncoded`), so adding an
// argument never moves the ones before it.
//
// The buffer is raw memory written with memcpy, by hand because this is the hot path of
// every publish: Array's append(contentsOf:) cost ~60 instructions per piece, three pieces
// per argument (callgrind). It is part of the hiredis edge (its bytes go to
// redisAsyncFormattedCommand or the subscriber's socket); a command is a value: adding to
// one that is shared copies it first.
import StarlingCore

struct RedisCommand {
    private final class Storage {
        let base: UnsafeMutableRawPointer
        let capacity: Int
        var used: Int

        init(capacity: Int) {
            base = .allocate(byteCount: capacity, alignment: 8)
            self.capacity = capacity
            used = 0
        }

        deinit { base.deallocate() }
    }

    private var storage: Storage
    private(set) var count = 0
    /// `*`, up to 20 digits, CRLF.
    private static let countRoom = 23
    /// `$`, up to 20 digits, CRLF before an argument; CRLF after it.
    private static let argumentRoom = 25

    /// `capacity`: the bytes of the arguments expected (a hint; the buffer grows past it).
    init(capacity: Int = 64) {
        storage = Storage(capacity: Self.countRoom + max(capacity, 16))
        storage.used = Self.countRoom
    }

    init(_ arguments: String...) {
        self.init(arguments)
    }

    init(_ arguments: [String]) {
        self.init(capacity: arguments.reduce(0) { $0 + $1.utf8.count + Self.argumentRoom })
        for a in arguments { add(a) }
    }

    mutating func add(_ argument: String) {
        var a = argument
        a.withUTF8 { add(bytes: UnsafeRawBufferPointer($0)) }
    }

    mutating func add(_ argument: StaticString) {
        add(bytes: UnsafeRawBufferPointer(start: argument.utf8Start, count: argument.utf8CodeUnitCount))
    }

    mutating func add(_ argument: [UInt8]) {
        argument.withUnsafeBytes { add(bytes: $0) }
    }

    /// One argument made of three pieces (a key's prefix, a name, its suffix).
    mutating func add(_ prefix: StaticString, _ middle: String, _ suffix: StaticString) {
        var m = middle
        m.withUTF8 { b in
            let length = prefix.utf8CodeUnitCount + b.count + suffix.utf8CodeUnitCount
            reserve(length + Self.argumentRoom)
            putLength(length)
            put(UnsafeRawBufferPointer(start: prefix.utf8Start, count: prefix.utf8CodeUnitCount))
            put(UnsafeRawBufferPointer(b))
            put(UnsafeRawBufferPointer(start: suffix.utf8Start, count: suffix.utf8CodeUnitCount))
            putCRLF()
        }
        count += 1
    }

    /// A whole number as its decimal digits.
    mutating func add(_ n: Int) {
        var text: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: a sign and 20 digits
        let length = withUnsafeMutableBytes(of: &text) { b -> Int in
            var k = b.count - Self.digits(UInt64(n.magnitude), into: b)
            if n < 0 { k -= 1; b[k] = 0x2D }
            return b.count - k
        }
        withUnsafeBytes(of: &text) { add(bytes: UnsafeRawBufferPointer(rebasing: $0[(24 - length)...])) }
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
        reserve(argument.count + Self.argumentRoom)
        putLength(argument.count)
        put(argument)
        putCRLF()
        count += 1
    }

    /// The bytes of the arguments so far (without the count line).
    var byteCount: Int { storage.used - Self.countRoom }

    /// Adds every argument of `other`, copying its encoded bytes once.
    mutating func add(argumentsOf other: RedisCommand) {
        reserve(other.byteCount)
        put(UnsafeRawBufferPointer(start: other.storage.base + Self.countRoom, count: other.byteCount))
        count += other.count
    }

    /// The same command with its first `replacing` arguments replaced by `head` (the
    /// publish script's `EVALSHA <sha>` becoming `EVAL <source>` after NOSCRIPT).
    func replacingHead(_ replacing: Int, with head: [String]) -> RedisCommand {
        withEncoded { b in
            var k = 0
            // Skip the count line, then `replacing` arguments: `$<len>\r\n<bytes>\r\n`.
            while b[k] != 10 { k += 1 }
            k += 1
            for _ in 0..<replacing {
                var length = 0
                k += 1  // `$`
                while b[k] != 13 { length = length * 10 + Int(b[k] - 48); k += 1 }
                k += 2 + length + 2
            }
            var c = RedisCommand(capacity: b.count - k + head.reduce(0) { $0 + $1.utf8.count + Self.argumentRoom })
            for h in head { c.add(h) }
            c.reserve(b.count - k)
            c.put(UnsafeRawBufferPointer(rebasing: b[k...]))
            c.count += count - replacing
            return c
        }
    }

    /// The command's bytes, for the connection to hand to its socket.
    func withEncoded<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        let start = writeCount()
        return body(UnsafeRawBufferPointer(start: storage.base + start, count: storage.used - start))
    }

    // MARK: the buffer

    /// Room for `n` more bytes in a buffer this command alone holds.
    private mutating func reserve(_ n: Int) {
        guard !isKnownUniquelyReferenced(&storage) || storage.used + n > storage.capacity else { return }
        let grown = Storage(capacity: max(2 * storage.capacity, storage.used + n))
        grown.base.copyMemory(from: storage.base, byteCount: storage.used)
        grown.used = storage.used
        storage = grown
    }

    /// Writes within the room `reserve` made.
    private func put(_ raw: UnsafeRawBufferPointer) {
        guard let from = raw.baseAddress, raw.count > 0 else { return }
        precondition(storage.used + raw.count <= storage.capacity)
        (storage.base + storage.used).copyMemory(from: from, byteCount: raw.count)
        storage.used += raw.count
    }

    private func putCRLF() {
        storage.base.storeBytes(of: 13, toByteOffset: storage.used, as: UInt8.self)
        storage.base.storeBytes(of: 10, toByteOffset: storage.used + 1, as: UInt8.self)
        storage.used += 2
    }

    /// `$<len>\r\n`.
    private func putLength(_ length: Int) {
        var line: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)  // `$`, up to 20 digits, CRLF
        let n = withUnsafeMutableBytes(of: &line) { b -> Int in
            b[31] = 10; b[30] = 13
            let d = Self.digits(UInt64(length), into: UnsafeMutableRawBufferPointer(rebasing: b[..<30]))
            b[29 - d] = 0x24
            return d + 3
        }
        withUnsafeBytes(of: &line) { put(UnsafeRawBufferPointer(rebasing: $0[(32 - n)...])) }
    }

    /// Writes `*<count>\r\n` to end where the first argument begins; returns where it
    /// starts. A buffer shared by copies holds the same arguments, so the same line.
    private func writeCount() -> Int {
        let b = UnsafeMutableRawBufferPointer(start: storage.base, count: Self.countRoom)
        b[Self.countRoom - 2] = 13; b[Self.countRoom - 1] = 10
        let d = Self.digits(UInt64(count), into: UnsafeMutableRawBufferPointer(rebasing: b[..<(Self.countRoom - 2)]))
        let start = Self.countRoom - 2 - d - 1
        b[start] = 0x2A
        return start
    }

    /// Writes `n`'s digits right-aligned at the end of `buffer`; returns how many.
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
}
