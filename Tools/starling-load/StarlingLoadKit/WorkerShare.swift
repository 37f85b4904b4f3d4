// WorkerShare: the part of a run one process takes. Alone it is the whole run; under
// `starling-load --procs N` worker k of N takes every channel c with c % N == k, and with
// each channel its subscribers and its publishing, so a worker's loss/duplicate/order
// accounting is exact on its own and the parent only adds the reports up.
// Subscribers keep their global index (source address, slow or not) and channel names
// their global number, so a split run opens the same connections as a single one.

/// `--worker k/N`: which part of a split run this process is.
public struct WorkerPart: Sendable, Equatable, Codable {
    public let index: Int
    public let count: Int

    public init(index: Int, count: Int) {
        precondition(count >= 1 && (0..<count).contains(index), "worker \(index) of \(count)")
        self.index = index
        self.count = count
    }

    /// "k/N", as the flag takes it.
    public init?(_ text: String) {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]), n >= 1, (0..<n).contains(k) else { return nil }
        self.init(index: k, count: n)
    }

    public var text: String { "\(index)/\(count)" }
}

public struct SubscriberSlot: Sendable, Equatable {
    /// Position among all subscribers of the run (source address, slow or not).
    public let index: Int
    /// Index into `WorkerShare.channels`.
    public let channel: Int
    public let isSlow: Bool
}

public struct WorkerShare: Sendable {
    /// Global channel numbers this process serves, by local channel index.
    public let channels: [Int]
    public let subscribers: [SubscriberSlot]
    /// Publisher connections of this process (local channel j belongs to publisher j % count).
    public let publishers: Int
    /// This process's part of the publish rate (nil: flat out).
    public let rate: Double?
    /// This process's part of the connection ramp, per second.
    public let rampPerSecond: Double

    public init(_ config: LoadConfig) {
        let part = config.part ?? WorkerPart(index: 0, count: 1)
        let total = config.channels
        precondition(part.count <= total, "more workers (\(part.count)) than channels (\(total))")
        channels = Array(stride(from: part.index, to: total, by: part.count))
        let slow = config.scenario == .slow ? min(config.slowSubscribers, config.subscribers) : 0
        var slots: [SubscriberSlot] = []
        for i in 0..<config.subscribers where (i % total) % part.count == part.index {
            // Slow subscribers are the last ones, so the healthy ones keep round-robin channels.
            slots.append(SubscriberSlot(index: i, channel: (i % total) / part.count, isSlow: i >= config.subscribers - slow))
        }
        subscribers = slots
        let mine = config.publishers / part.count + (part.index < config.publishers % part.count ? 1 : 0)
        publishers = max(1, min(mine, channels.count))
        let fraction = Double(channels.count) / Double(total)
        rate = config.rate.map { $0 * fraction }
        rampPerSecond = config.subscribers == 0 ? config.rampPerSecond
            : max(1, config.rampPerSecond * Double(slots.count) / Double(config.subscribers))
    }

    public var slowSubscribers: Int { subscribers.count(where: \.isSlow) }
}
