// BrokerConfig: every knob of `starling serve` that the broker itself reads.
import Logging
import StarlingAuth
import StarlingCore
import StarlingHTTP

public struct BrokerConfig {
    public var heartbeatMs: UInt64 = 15_000
    /// Bound of one subscriber's outbound queue (`--client-buffer`).
    public var clientBufferBytes = 1 << 20
    /// Bound of all subscribers' queues together on one loop; past it the largest
    /// queues are shed first.
    public var maxQueuedBytes = 1 << 30
    public var maxEventBytes = 256 * 1024
    /// Origins allowed to call from a browser on another origin; `*` allows any.
    public var corsOrigins: [String] = []
    /// Events fetched from the store per replay page.
    public var replayPageSize = 1024
    /// The reconnect delay sent in every stream's opening `retry:` line.
    public var retryMs = 2_000
    /// `--subscribe-from-start PATTERN`: a subscribe with no resume point to a matching
    /// channel starts at `earliest` instead of live (per-generation channels).
    public var subscribeFromStart = ChannelPatterns.none
    /// `--merge-events NAME`: events of these names whose data are JSON strings may be
    /// merged for a slow subscriber and on a `?merge=1` replay (TokenMerge).
    public var mergeEvents: Set<String> = []

    /// Why `name` cannot be a `--merge-events` name, or nil.
    public static func mergeEventProblem(_ name: String) -> String? {
        if !Names.isValidEventName(name) { return "'\(name)' is not an event name (1–64 bytes of [A-Za-z0-9._:-])" }
        if Names.isReserved(name) { return "'\(name)' is reserved: names starting starling. belong to the broker" }
        return nil
    }
    public var http = HTTPLimits()
    /// Where access-log lines go (`access_log`); nil: none.
    public var accessLog: Logger?

    public init() {}
}
