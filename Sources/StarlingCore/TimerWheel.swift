// TimerWheel: heartbeats and timeouts for 100,000 connections without an OS timer each
// (SPEC §5). One loop timer ticks the wheel; each owner has at most one scheduled
// deadline. Cancelling bumps the owner's token, so stale slot entries are skipped
// lazily instead of searched for.

public protocol WheelTimed: AnyObject {
    /// Owned by the wheel: which schedule of this owner is current.
    var wheelToken: UInt32 { get set }
}

public struct TimerWheel<Owner: WheelTimed> {
    private struct Entry {
        let owner: Owner
        let token: UInt32
        let dueTick: UInt64
    }

    public let tickMs: UInt64
    private var slots: [[Entry]]
    private var currentTick: UInt64

    public init(tickMs: UInt64 = 100, slotCount: Int = 512, nowMs: UInt64) {
        self.tickMs = tickMs
        self.slots = Array(repeating: [], count: slotCount)
        self.currentTick = nowMs / tickMs
    }

    /// Schedules `owner` to expire at `deadlineMs` (replacing any earlier schedule).
    public mutating func schedule(_ owner: Owner, atMs deadlineMs: UInt64) {
        owner.wheelToken &+= 1
        let due = Swift.max(deadlineMs / tickMs + (deadlineMs % tickMs == 0 ? 0 : 1), currentTick + 1)
        slots[Int(due % UInt64(slots.count))].append(Entry(owner: owner, token: owner.wheelToken, dueTick: due))
    }

    public mutating func cancel(_ owner: Owner) { owner.wheelToken &+= 1 }

    /// Advances to `nowMs`; returns the owners whose deadline has passed, each once.
    public mutating func advance(toMs nowMs: UInt64) -> [Owner] {
        let target = nowMs / tickMs
        var expired: [Owner] = []
        // A stall longer than a full turn only needs one pass over every slot.
        let steps = Swift.min(target &- currentTick, UInt64(slots.count))
        guard target > currentTick else { return [] }
        for step in 1...steps {
            let tick = target - steps + step
            let index = Int(tick % UInt64(slots.count))
            guard !slots[index].isEmpty else { continue }
            let entries = slots[index]
            slots[index].removeAll(keepingCapacity: true)
            for e in entries where e.owner.wheelToken == e.token {
                if e.dueTick <= target {
                    e.owner.wheelToken &+= 1
                    expired.append(e.owner)
                } else {
                    slots[index].append(e)
                }
            }
        }
        currentTick = target
        return expired
    }
}
