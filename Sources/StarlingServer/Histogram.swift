// Histogram: a Prometheus histogram as plain integers (one loop, one thread: no atomics
// on the hot path). Buckets are fixed at creation, so recorders of several loops merge
// by adding counts.

public struct Histogram: Sendable, Equatable {
    /// Upper bounds in seconds, ascending; +Inf is implicit.
    public let bounds: [Double]
    /// Observations per bucket (not cumulative); the last one is +Inf.
    public private(set) var counts: [Int]
    public private(set) var sum: Double = 0
    public private(set) var count = 0

    public init(bounds: [Double]) {
        precondition(zip(bounds, bounds.dropFirst()).allSatisfy { $0 < $1 }, "histogram bounds must ascend")
        self.bounds = bounds
        counts = Array(repeating: 0, count: bounds.count + 1)
    }

    public mutating func observe(_ seconds: Double) {
        var k = 0
        while k < bounds.count, seconds > bounds[k] { k += 1 }
        counts[k] += 1
        sum += seconds
        count += 1
    }

    public mutating func merge(_ other: Histogram) {
        precondition(other.bounds == bounds, "only histograms with the same buckets merge")
        for k in counts.indices { counts[k] += other.counts[k] }
        sum += other.sum
        count += other.count
    }

    /// From 100 µs to 10 s: publish-to-write and request latencies.
    public static let latencyBounds: [Double] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    /// From 1 s to a day: how long SSE streams stay open.
    public static let streamBounds: [Double] = [1, 5, 15, 60, 300, 900, 1800, 3600, 14400, 86400]
}
