// SharedBytes: an immutable byte buffer with a stable address, shared by reference.
// One event is encoded into one SharedBytes and every subscriber queue holds the same
// instance; the write path hands its address straight to writev, so nothing is copied
// per subscriber.

// @unchecked Sendable: the bytes are written once in init and never again, so any loop
// may read them; the pointer is freed only when the last reference goes.
public final class SharedBytes: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let count: Int

    /// Copies `bytes` once, with a memcpy (this is on the publish path).
    public init(_ bytes: UnsafeRawBufferPointer) {
        count = bytes.count
        base = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(count, 1), alignment: 1)
        if count > 0 { base.copyMemory(from: bytes.baseAddress!, byteCount: count) }
    }

    public init(_ bytes: ArraySlice<UInt8>) {
        count = bytes.count
        base = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(count, 1), alignment: 1)
        bytes.withUnsafeBytes { if $0.count > 0 { base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
    }

    public convenience init(_ bytes: [UInt8]) { self.init(bytes[...]) }

    /// Allocates `capacity` bytes and lets `fill` write them in place, returning how many
    /// it wrote (at most `capacity`): the event encoder writes straight into the shared
    /// buffer, with no intermediate array and no second copy.
    public init(capacity: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Int) {
        base = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(capacity, 1), alignment: 1)
        let written = fill(UnsafeMutableRawBufferPointer(start: base, count: capacity))
        precondition(written >= 0 && written <= capacity, "SharedBytes filled past its capacity")
        count = written
    }

    public convenience init(_ string: String) { self.init(Array(string.utf8)) }

    deinit { base.deallocate() }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
    public var array: [UInt8] { Array(bytes) }
    public var string: String { String(decoding: bytes, as: UTF8.self) }
}
