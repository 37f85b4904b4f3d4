// RedisBackoff: delays between reconnect attempts, doubling up to a ceiling, each drawn
// from [delay/2, delay] so nodes that lost the same Redis do not reconnect in lockstep.

struct RedisBackoff {
    let initialMs: UInt64
    let maxMs: UInt64
    private var attempt = 0

    init(initialMs: UInt64 = 50, maxMs: UInt64 = 2_000) {
        self.initialMs = initialMs; self.maxMs = maxMs
    }

    /// The delay before the next attempt.
    mutating func next() -> UInt64 {
        let ceiling = min(maxMs, initialMs << UInt64(min(attempt, 16)))
        attempt += 1
        return UInt64.random(in: (ceiling / 2)...ceiling)
    }

    mutating func reset() { attempt = 0 }
}
