// RedisTail: the newest stretch of one watched channel's stream, kept in the broker's memory
// so replays of recent history, and many subscribers replaying the same channel at once,
// read Redis once instead of once per subscriber and page (Nchan keeps such a buffer in
// front of Redis too; without it every replay paid an XINFO + XRANGE round trip and the
// decoding of every entry, per subscriber).
//
// What makes serving from memory exact is one invariant: the tail holds EVERY entry the
// stream has after `after`, up to its last event, and no other. Only three things may
// establish or extend it, each a fact read from Redis on the current connection epoch:
//   - the watch's baseline (XREVRANGE + - COUNT 1: the newest entry at that instant; the
//     live events after it are its exact successors);
//   - a replay page read from Redis without a gap (XRANGE from the exclusive start: the
//     exact successors of the start at that instant);
//   - live delivery, but only appended to a tail it connects to (its events follow the
//     watch's `lastDelivered` without a hole, RedisStore's own invariant).
// A stream only loses entries at its front (MAXLEN/MINID trimming), so such a stretch stays
// true while the stream lives; `trim` drops the front by the same retention the script
// applies, so the tail never serves what Redis has already let go by age or count. What
// could rewrite history under the same IDs — a Redis restart, a failover to a replica
// that missed writes, a slot moving — resets every tail (`RedisStore.dropTails`) and bumps
// the epoch so replies issued before cannot re-establish it; the next read from Redis,
// with its XINFO gap check, anchors it again. A read that leaves the tail (resume point
// before its start, or at its end) goes to Redis, so the gap rules of RedisStore.gap
// decide every boundary: `starling.gap` is reported exactly as without the tail.
import StarlingCore

struct RedisTail {
    /// Exclusive lower bound of what the tail holds (meaningful only when `anchored`).
    private(set) var after: EventID = .zero
    /// `after` lies before the stream's first entry: `.earliest` may be served from here.
    private(set) var fromStart = false
    /// False until a fact from Redis anchors the tail, and again after `reset`.
    private(set) var anchored = false
    /// Events `events[head...]`, strictly increasing IDs; the dead prefix is compacted
    /// lazily so trimming the front stays O(1) amortised.
    private var events: [StoredEvent] = []
    private var head = 0

    var count: Int { events.count - head }
    /// The newest ID the tail vouches for.
    var last: EventID { events.last?.id ?? after }

    mutating func reset() {
        anchored = false
        fromStart = false
        after = .zero
        events.removeAll()
        head = 0
    }

    /// Takes `successors`, the exact successors of `previous` in the stream (all of them
    /// up to the last one). `fromStart`: `previous` precedes the stream's first entry.
    /// `anchoring`: the fact comes from Redis itself (baseline or replay page), so it may
    /// replace a tail it does not connect to; live deliveries only extend.
    mutating func take(_ successors: [StoredEvent], after previous: EventID, fromStart: Bool, anchoring: Bool) {
        if anchored, previous >= after, previous <= last {
            // Connects: keep what we have, append what is new.
            for e in successors where e.id > last { events.append(e) }
            return
        }
        // A stretch elsewhere: replace an empty tail (e.g. the baseline, before history is
        // replayed) or an older one (live delivery and resuming clients both live at the
        // head of the channel); never on live news alone, which proves nothing before it.
        guard anchoring, !anchored || count == 0 || (successors.last?.id ?? previous) >= last else { return }
        reset()
        anchored = true
        after = previous
        self.fromStart = fromStart
        events = successors
    }

    /// Drops the front beyond `maxCount` events or older than `minMs`, as Redis's script
    /// does (MAXLEN ~ keeps at least the count, so the tail holds a subset of Redis).
    mutating func trim(maxCount: Int, minMs: UInt64) {
        guard anchored else { return }
        var k = head
        while k < events.count, events.count - k > maxCount || events[k].id.ms < minMs { k += 1 }
        guard k > head else { return }
        after = events[k - 1].id
        fromStart = false
        head = k
        if head >= 1024, head * 2 >= events.count {
            events.removeFirst(head)
            head = 0
        }
    }

    /// The page a read from `from` gets, or nil when the tail cannot answer it exactly (then
    /// Redis does). Never reports a gap: a resume point inside the tail has every event
    /// after it here. A page that stops at the tail's last event says `reachedEnd: false`
    /// unless that event is final, so the next read goes to Redis and confirms the end.
    func page(from: ResumePoint, limit: Int) -> ReadResult? {
        guard anchored, count > 0 else { return nil }
        let start: Int
        switch from {
        case .live: return nil
        case .earliest:
            guard fromStart else { return nil }
            start = head
        case .after(let id):
            // From the stream's start, `after` is zero: a resume point before the first
            // entry held may be one Redis trimmed (a gap), so only IDs from there on.
            guard id >= (fromStart ? events[head].id : after), id < last else { return nil }
            start = firstIndex(after: id)
        }
        let end = min(events.count, start + max(1, limit))
        let newest = events[events.count - 1]
        let finalID = newest.final ? newest.id : nil
        return ReadResult(events: Array(events[start..<end]), gap: nil,
                          reachedEnd: end == events.count && finalID != nil, finalID: finalID, lastID: newest.id)
    }

    /// Index of the first event newer than `id` (binary search; IDs increase).
    private func firstIndex(after id: EventID) -> Int {
        var lo = head, hi = events.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if events[mid].id <= id { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
