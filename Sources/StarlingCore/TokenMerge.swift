// TokenMerge (SPEC §4 "Token merge"): consecutive token events of one channel and one
// name, whose data are JSON strings, become one event with the concatenated text and
// the ID of the last. Used by a slow subscriber's OutboundQueue (before conflation and
// disconnection) and by a `?merge=1` replay. Invariants:
// - the text a client ends with is byte-identical: on a single-channel stream each piece
//   is taken as the client would see it (CR LF and CR read as LF, so a piece ending in
//   CR followed by one starting with LF stays two line breaks); a multiplexed envelope
//   carries the text as a JSON string, so there the raw pieces are joined;
// - a merged event carries the last merged event's ID, and holds nothing from before
//   the first one, so a resume from it loses and repeats nothing;
// - events with a conflate key, final events and anything not a JSON string are never
//   merged, nor merged across.
import DequeModule

public enum TokenMerge {
    /// May `event` be merged, given the names of `--merge-events`?
    public static func isMergeable(_ event: StoredEvent, names: Set<String>) -> Bool {
        guard case .text = event.data, event.conflate == nil, !event.final else { return false }
        return names.contains(event.name)
    }

    /// The text a single-channel client reads for `text`: its line breaks as LF.
    static func asRead(_ text: String) -> String {
        guard text.utf8.contains(0x0D) else { return text }
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        var previousWasCR = false
        for b in text.utf8 {
            if b == 0x0A, previousWasCR { previousWasCR = false; continue }
            previousWasCR = b == 0x0D
            out.append(previousWasCR ? 0x0A : b)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The largest merged text for a subscriber with `clientBuffer` bytes of queue: a
    /// quarter of it, so one merged event never crowds a queue on its own.
    public static func maxMergedBytes(clientBuffer: Int) -> Int { max(1, clientBuffer / 4) }

    /// A run of mergeable events being joined into one.
    public struct Run {
        /// Multiplexed streams join raw text (it travels JSON-quoted in the envelope).
        public let multiplexed: Bool
        public let maxBytes: Int
        public private(set) var first: StoredEvent?
        public private(set) var last: StoredEvent?
        public private(set) var count = 0
        private var text = ""

        public init(multiplexed: Bool, maxBytes: Int) { self.multiplexed = multiplexed; self.maxBytes = maxBytes }

        public var isEmpty: Bool { count == 0 }

        /// Whether `event` (mergeable) may join this run: same channel and name, and the
        /// joined text stays within `maxBytes` (a first event always may).
        public func admits(_ event: StoredEvent) -> Bool {
            guard let first else { return true }
            return first.channel == event.channel && first.name == event.name
                && text.utf8.count + event.data.wireText.utf8.count <= maxBytes
        }

        public mutating func append(_ event: StoredEvent) {
            precondition(admits(event), "a run holds one channel's events of one name")
            if first == nil { first = event }
            last = event
            count += 1
            text += multiplexed ? event.data.wireText : TokenMerge.asRead(event.data.wireText)
        }

        /// The run as one event (the event itself when it holds one), and an empty run.
        public mutating func take() -> StoredEvent? {
            defer { first = nil; last = nil; count = 0; text = "" }
            guard let last else { return nil }
            if count == 1 { return last }
            return StoredEvent(channel: last.channel, id: last.id, name: last.name, data: .text(text), conflate: nil,
                               final: false, storedAtMs: last.storedAtMs)
        }
    }

    /// Merges the runs among `items` (from index `start`; earlier ones are being written).
    /// Returns the new items and how many events were folded into others.
    static func merge(_ items: Deque<OutboundQueue.Item>, from start: Int, maxBytes: Int) -> (items: Deque<OutboundQueue.Item>, folded: Int) {
        var out = Deque<OutboundQueue.Item>()
        out.reserveCapacity(items.count)
        out.append(contentsOf: items.prefix(start))
        var run = Run(multiplexed: false, maxBytes: maxBytes)
        /// The `id:` line of the run's last event (multiplexed) and the run's own items, kept
        /// as they are when the run ends up holding one event.
        var cursorOfLast: OutboundQueue.Item?
        var runItems: [OutboundQueue.Item] = []
        var folded = 0

        func endRun() {
            guard !run.isEmpty else { return }
            if run.count == 1 {
                out.append(contentsOf: runItems)
            } else {
                folded += run.count - 1
                let merged = run.take()!
                if run.multiplexed {
                    out.append(cursorOfLast!)
                    out.append(.init(merged.envelope, token: .envelope(merged)))
                } else {
                    out.append(.init(merged.sse, token: .event(merged)))
                }
            }
            run = Run(multiplexed: false, maxBytes: maxBytes)
            runItems.removeAll(keepingCapacity: true)
            cursorOfLast = nil
        }

        var k = start
        while k < items.count {
            let item = items[k]
            // One event: its own item, or (multiplexed) its cursor line and its envelope.
            var event: StoredEvent?
            var unit = 1
            var multiplexed = false
            switch item.token {
            case .event(let e)?: event = e
            case .cursor?:
                if k + 1 < items.count, case .envelope(let e)? = items[k + 1].token { event = e; unit = 2; multiplexed = true }
            case .envelope?, nil: break
            }
            guard let event else {
                endRun()
                out.append(item)
                k += 1
                continue
            }
            if !run.isEmpty, run.multiplexed != multiplexed || !run.admits(event) { endRun() }
            if run.isEmpty { run = Run(multiplexed: multiplexed, maxBytes: maxBytes) }
            run.append(event)
            runItems.append(contentsOf: items[k..<(k + unit)])
            if multiplexed { cursorOfLast = item }
            k += unit
        }
        endRun()
        return (out, folded)
    }
}
