// SharedBytes: an immutable byte buffer with a stable address, shared by reference.
// One event is encoded into one SharedBytes and every subscriber queue holds the same
// buffer; the write path hands its address straight to writev, so nothing is copied per
// subscriber.
//
// The count and the bytes live in one object (ManagedBufferPointer's tail allocation):
// one allocation per buffer, where an object holding a malloc'd block took two, and
// every stored event makes one. The struct is that one reference.

// @unchecked Sendable: the bytes are written once, before the buffer is handed out, and
// never again, so any loop may read them; the memory goes with the last reference.
public struct SharedBytes: @unchecked Sendable {
    /// The object that holds the count (its header) and the bytes after it; it declares
    /// no stored property, as ManagedBufferPointer requires of a buffer class.
    public final class Storage: @unchecked Sendable {}

    @usableFromInline let buffer: ManagedBufferPointer<Int, UInt8>

    /// Allocates `capacity` bytes and lets `fill` write them in place, returning how many
    /// it wrote (at most `capacity`): the event encoder writes straight into the shared
    /// buffer, with no intermediate array and no second copy.
    public init(capacity: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Int) {
        var made = ManagedBufferPointer<Int, UInt8>(bufferClass: Storage.self, minimumCapacity: Swift.max(capacity, 1)) { _, _ in 0 }
        let written = made.withUnsafeMutablePointerToElements { fill(UnsafeMutableRawBufferPointer(start: $0, count: capacity)) }
        precondition(written >= 0 && written <= capacity, "SharedBytes filled past its capacity")
        made.header = written
        buffer = made
    }

    /// The buffer an earlier SharedBytes made (kept as its `storage`).
    public init(storage: Storage) { buffer = ManagedBufferPointer(unsafeBufferObject: storage) }

    /// Copies `bytes` once, with a memcpy (this is on the publish path).
    public init(_ bytes: UnsafeRawBufferPointer) {
        self.init(capacity: bytes.count) { out in
            if bytes.count > 0 { out.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
            return bytes.count
        }
    }

    public init(_ bytes: ArraySlice<UInt8>) { self = bytes.withUnsafeBytes { SharedBytes($0) } }
    public init(_ bytes: [UInt8]) { self.init(bytes[...]) }
    public init(_ string: String) { self.init(Array(string.utf8)) }

    /// The object behind the bytes: for a cache that holds a buffer by reference.
    public var storage: Storage { unsafeDowncast(buffer.buffer, to: Storage.self) }

    /// The first byte's address, stable for the buffer's life (the object never moves).
    @inlinable public var base: UnsafeMutableRawPointer { buffer.withUnsafeMutablePointerToElements { UnsafeMutableRawPointer($0) } }
    @inlinable public var count: Int { buffer.header }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
    public var array: [UInt8] { Array(bytes) }
    public var string: String { String(decoding: bytes, as: UTF8.self) }
}
