// BrokerConfig: every knob of `starling serve` that the broker itself reads.
import Logging
import StarlingAuth
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
    public var http = HTTPLimits()
    /// Where access-log lines go (`access_log`); nil: none.
    public var accessLog: Logger?

    public init() {}
}
