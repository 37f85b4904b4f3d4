// SharedBytes: an immutable byte buffer with a stable address, shared by reference.
// One event is encoded into one SharedBytes and every subscriber queue holds the same
// instance; the write path hands its address straight to writev, so nothing is copied
// per subscriber.

public final class SharedBytes {
    public let base: UnsafeMutableRawPointer
    public let count: Int

    public init<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        count = bytes.count
        base = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(count, 1), alignment: 1)
        var p = base.assumingMemoryBound(to: UInt8.self)
        for b in bytes { p.pointee = b; p += 1 }
    }

    public convenience init(_ string: String) { self.init(Array(string.utf8)) }

    deinit { base.deallocate() }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
    public var array: [UInt8] { Array(bytes) }
    public var string: String { String(decoding: bytes, as: UTF8.self) }
}
