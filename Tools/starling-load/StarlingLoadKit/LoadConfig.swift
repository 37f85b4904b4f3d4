// LoadConfig: everything one run needs, filled by the CLI or a test. Scenarios only
// pick the shape; every knob stays settable.

public enum Scenario: String, CaseIterable, Sendable, Codable {
    /// 1 channel × N subscribers, publishing at a rate or flat out.
    case broadcast
    /// K channels × a few subscribers each: the AI-token shape.
    case channels
    /// N subscribers, no traffic: memory per connection and heartbeat cost.
    case idle
    /// A channel filled first, then subscribers resume from `earliest`.
    case replay
    /// broadcast where some subscribers stop reading: the others must not slow down.
    case slow
}

/// The whole run's shape (every count is over all processes of a `--procs` run); a
/// worker process also carries its `part` and takes its `WorkerShare` of it.
public struct LoadConfig: Sendable {
    public var scenario: Scenario = .broadcast
    public var host = "127.0.0.1"
    public var port = 8080
    /// Loopback source addresses, used round-robin (each has its own ~28k ephemeral ports).
    public var sources: [String] = []
    public var subscribers = 100
    public var channels = 1
    public var publishers = 1
    /// Publishes per second over all channels; nil is flat out (bounded by `window`).
    public var rate: Double?
    /// Approximate size in bytes of each event's data object.
    public var payloadSize = 100
    /// Seconds of publishing (or holding, for idle).
    public var duration: Double = 10
    /// New connections per second while subscribers connect.
    public var rampPerSecond: Double = 5_000
    /// Flat out: events per channel published but not yet delivered to every subscriber.
    public var window = 16
    /// Publish requests in flight per publisher connection (HTTP pipelining).
    public var pipeline = 64
    /// Subscribers of the slow scenario that stop reading after their first bytes.
    public var slowSubscribers = 0
    /// Events put in the channel before the replay subscribers connect.
    public var replayEvents = 10_000
    /// The Last-Event-ID a replay subscriber sends ("" sends none: the URL decides).
    public var replayFrom = "earliest"
    /// Reconnect a dropped subscriber with its Last-Event-ID.
    public var reconnect = true
    /// Seconds to wait after publishing for the last events to arrive.
    public var drainSeconds: Double = 5
    /// Fresh per run, so a replay never meets an earlier run's events on a reused name.
    public var channelPrefix = "load\(UInt32.random(in: 0...UInt32.max))"
    public var templates = Templates()
    public var extraHeaders: [(String, String)] = []
    /// The server's PID, for CPU seconds and RSS from /proc (nil: not measured).
    public var serverPID: Int32?
    /// Processes whose CPU and RSS count as the server's too (the Redis behind a broker).
    public var alsoMeasuredPIDs: [Int32] = []
    /// Print a progress line to stderr once a second (only when it is a terminal).
    public var progress = true
    /// Self-check: never publish this seq on any channel, so every subscriber must report
    /// exactly one loss (proves the detector against a real stream).
    public var dropSeq: UInt64?
    /// Set in a worker process of `--procs N`: it runs its share, waits for its parent's
    /// SIGUSR1 before the measured phase (so all workers measure one window), and adds
    /// its latency histogram to the report for the parent to merge.
    public var part: WorkerPart?

    public init() {}

    /// The name of channel number `index` (global: the same in every worker).
    public func channelName(_ index: Int) -> String { "\(channelPrefix)-\(index)" }

    /// Whether events flow: idle only holds connections.
    public var publishes: Bool { scenario != .idle }
}
