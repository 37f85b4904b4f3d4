// ProducerSequence: the idempotent-producer rule of SPEC §4, plain Swift. Per channel and
// producer the channel remembers an epoch and the highest seq stored in it. The first seq
// of a producer (or of a higher epoch) may be any value; after it each event carries
// highest+1. A repeat (≤ highest) is acknowledged and not stored; a jump ahead is refused
// (`producer_seq_gap`, naming the expected seq); a lower epoch is refused (`producer_fenced`).
// An absent epoch reads as 0. ops/redis/publish.lua applies the same rule, word for word.

/// Where one producer stands on one channel.
public struct ProducerPosition: Equatable, Sendable {
    public var epoch: Int64
    public var highest: Int64
    public init(epoch: Int64, highest: Int64) { self.epoch = epoch; self.highest = highest }
}

/// A batch judged whole: which drafts are repeats, and the positions to record if it is stored.
public struct ProducerVerdict: Sendable {
    /// One flag per draft: true for a repeat (acknowledged, not stored). Empty when no
    /// draft names a producer (none is a repeat; no array made per publish): read it
    /// through `isDuplicate`.
    public var duplicate: [Bool]
    public func isDuplicate(_ k: Int) -> Bool { k < duplicate.count && duplicate[k] }
    public var duplicates: Int
    /// The producers' positions after the batch; recorded only when the batch is stored.
    public var positions: [String: ProducerPosition]
}

public struct ProducerTable: Sendable {
    public private(set) var positions: [String: ProducerPosition] = [:]

    public init() {}

    public var isEmpty: Bool { positions.isEmpty }

    /// Judges `drafts` in order without changing anything: the first event that jumps
    /// ahead or is fenced fails the whole batch (its `eventIndex` names it).
    public func judge(_ drafts: [EventDraft]) -> Result<ProducerVerdict, BrokerError> {
        var verdict = ProducerVerdict(duplicate: [], duplicates: 0, positions: [:])
        for k in drafts.indices {  // by index: a draft copied out would retain its strings
            guard let producer = drafts[k].producer, let seq = drafts[k].seq else {
                if !verdict.duplicate.isEmpty { verdict.duplicate.append(false) }
                continue
            }
            if verdict.duplicate.isEmpty {
                // The first draft with a producer: the flags of those before it, all false.
                verdict.duplicate.reserveCapacity(drafts.count)
                verdict.duplicate.append(contentsOf: repeatElement(false, count: k))
            }
            let epoch = drafts[k].epoch ?? 0
            let current = verdict.positions[producer] ?? positions[producer]
            switch Self.rule(current, epoch: epoch, seq: seq) {
            case .store:
                verdict.positions[producer] = ProducerPosition(epoch: epoch, highest: seq)
                verdict.duplicate.append(false)
            case .repeat:
                verdict.duplicate.append(true)
                verdict.duplicates += 1
            case .gap(let expected):
                return .failure(BrokerError(.conflict, "producer_seq_gap",
                    "producer \"\(producer)\": seq \(seq) jumps ahead; expected seq \(expected)", eventIndex: k))
            case .fenced(let current):
                return .failure(BrokerError(.conflict, "producer_fenced",
                    "producer \"\(producer)\": epoch \(epoch) is below its current epoch \(current)", eventIndex: k))
            }
        }
        return .success(verdict)
    }

    /// Records a stored batch's positions.
    public mutating func record(_ verdict: ProducerVerdict) {
        for (producer, position) in verdict.positions { positions[producer] = position }
    }

    enum Outcome: Equatable { case store, `repeat`, gap(expected: UInt64), fenced(current: Int64) }

    static func rule(_ current: ProducerPosition?, epoch: Int64, seq: Int64) -> Outcome {
        guard let current else { return .store }
        if epoch < current.epoch { return .fenced(current: current.epoch) }
        if epoch > current.epoch { return .store }
        if seq <= current.highest { return .repeat }
        // highest+1 in UInt64: the successor of 2^63−1 exists, though no seq can reach it.
        let expected = UInt64(current.highest) + 1
        return UInt64(seq) == expected ? .store : .gap(expected: expected)
    }
}
