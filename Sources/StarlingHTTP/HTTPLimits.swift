// HTTPLimits: the bounds of SPEC §7 enforced while a request is read.

public struct HTTPLimits: Sendable {
    public var maxHeadBytes = 16 * 1024
    public var maxURLBytes = 8 * 1024
    public var maxBodyBytes = 4 * 1024 * 1024
    /// A request head must arrive within this time of its first byte (slowloris).
    public var headTimeoutMs: UInt64 = 10_000
    /// A keep-alive connection with no request in progress is closed after this.
    public var idleTimeoutMs: UInt64 = 60_000
    public var maxConnections = 19_000

    public init() {}
}
