// Handoff: hands a value to one other thread, which alone uses it from then on (a test
// reads a stream on a reader thread while its own thread publishes).

/// @unchecked Sendable: by contract only the receiving thread uses the value after the
/// handoff; the blocking client's objects are not shared between threads.
public struct Handoff<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}
