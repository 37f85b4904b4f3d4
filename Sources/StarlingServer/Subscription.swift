// Subscription: one SSE response, fed by one ChannelLeg per channel (one for
// /v1/channels/{ch}/events, up to 64 for /v1/events). Legs replay history in pages,
// paced by the connection's queue, then switch to live delivery with no gap and no
// duplicate. A single-channel stream sends each event's shared encoding as is; a
// multiplexed one sends a per-subscriber cursor line plus the shared envelope. With
// `?merge=1` a leg replays each run of token events as one event (TokenMerge.swift).
import DequeModule
import StarlingAuth
import StarlingCore
import StarlingHTTP
import StarlingStore

final class Subscription: StreamDelegate {
    // unowned(unsafe): the broker outlives every subscription; plain unowned costs a
    // refcount round trip on each of the millions of accesses in the fan-out loop.
    unowned(unsafe) let broker: Broker
    let connection: Connection
    let multiplexed: Bool
    private(set) var legs: [ChannelLeg] = []
    let grant: Grant
    /// `?merge=1`: history is replayed with token runs merged.
    let mergeReplay: Bool
    private var ended = false
    /// For the stream-duration histogram and the access log.
    let startedNs = MonotonicClock.nowNs()

    init(broker: Broker, connection: Connection, channels: [String], resume: [ResumePoint], multiplexed: Bool, grant: Grant,
         mergeReplay: Bool = false) {
        self.broker = broker
        self.connection = connection
        self.multiplexed = multiplexed
        self.grant = grant
        self.mergeReplay = mergeReplay && !broker.config.mergeEvents.isEmpty
        legs = zip(channels, resume).map { ChannelLeg(subscription: self, channel: $0, resume: $1) }
        replayingLegs = legs.count
        connection.wantsRoom = replayingLegs > 0
    }

    var channels: [String] { legs.map(\.channel) }

    /// Bytes queued for this client (its legs count them), for the access log.
    var bytesQueued: Int { legs.reduce(0) { $0 + $1.bytesQueued } }

    /// Queues one event of `leg` on a multiplexed stream: the subscriber's cursor line, then
    /// the event's shared envelope (a single-channel leg queues its own: ChannelLeg.emit).
    /// False once this subscription has ended.
    func emitMultiplexed(_ event: StoredEvent, from leg: ChannelLeg) -> Bool {
        precondition(multiplexed, "a single-channel leg queues its events itself")
        let token = broker.isMergeable(event)
        let cursor = MultiplexCursor.encode(channels: channels, positions: legs.map(\.lastID))
        let first = connection.send(SharedBytes(Array("id: \(cursor)\n".utf8)), token: token ? .cursor : nil)
        let result = connection.send(event.envelope, conflate: nil, token: token ? .envelope(event) : nil)
        if case .relieved(let merged, let dropped) = first { count(merged: merged, dropped: dropped) }
        leg.bytesQueued &+= event.sse.count
        return settle(result)
    }

    /// What a push onto the queue means for this stream: merges and drops are counted, an
    /// overflow cuts the slow consumer off. False once the subscription has ended.
    func settle(_ result: OutboundQueue.PushResult) -> Bool {
        switch result {
        case .queued: break
        case .relieved(let merged, let dropped): count(merged: merged, dropped: dropped)
        case .overflow:
            broker.noteSlowConsumer(self)
            connection.close()
            return false
        }
        return connection.isOpen
    }

    private func count(merged: Int, dropped: Int) {
        broker.metrics.mergedEvents += merged
        broker.metrics.conflatedDrops += dropped
    }

    func sendGap(_ gap: Gap, channel: String) {
        broker.metrics.gapsReported += 1
        _ = connection.send(SharedBytes(Broker.gapEvent(channel: channel, gap)))
    }

    /// A leg reached its channel's final event; the response ends when all have.
    func legFinished() {
        guard !ended, legs.allSatisfy(\.finished) else { return }
        ended = true
        connection.finish()
    }

    func pump() { for leg in legs where connection.isOpen { leg.pump() } }

    static let expiredNotice = SharedBytes(SSEEncoder.event(id: nil, name: "starling.expired", data: "{\"reason\":\"token_expired\"}"))

    /// The token behind this stream expired: say so and end the response cleanly.
    func expire() {
        guard !ended, connection.isOpen else { return }
        ended = true
        for leg in legs { leg.stop() }
        _ = connection.send(Self.expiredNotice)
        connection.finish()
    }

    /// Legs still replaying history; only they care that the queue has room again.
    var replayingLegs = 0 {
        didSet { connection.wantsRoom = replayingLegs > 0 }
    }

    func streamHasRoom(_ connection: Connection) {
        if replayingLegs > 0 { pump() }
    }

    func streamDidClose(_ connection: Connection) {
        ended = true
        broker.expiring[ObjectIdentifier(self)] = nil
        for leg in legs { leg.stop(); broker.remove(leg) }
        broker.streamEnded(self)
    }
}

/// One channel's local legs, in the broker's map and (as the channel's listener) in the
/// store: a class, so both hold the same list.
final class ChannelLegs {
    var list: [ChannelLeg] = []
}

final class ChannelLeg {
    enum Phase { case replaying, live, done }

    // What a live delivery reads comes first, on the object's first cache line: with the
    // subscription's connection and broker kept here too, a delivery to a single-channel
    // stream touches this line and the connection's, not the subscription's (one cold line
    // less per delivery). The subscription owns this leg and its connection (through the
    // connection's stream delegate) and removes the leg from the broker before either goes.
    unowned(unsafe) let connection: Connection
    unowned(unsafe) let broker: Broker
    /// The newest event ID queued to this client (or where a live start stood).
    var lastID: EventID?
    var phase = Phase.replaying {
        didSet { if oldValue == .replaying, phase != .replaying { subscription.replayingLegs -= 1 } }
    }
    let multiplexed: Bool
    /// Bytes queued by this leg (the access log's sum).
    var bytesQueued = 0
    unowned(unsafe) let subscription: Subscription  // it owns this leg
    let channel: String
    /// Position in the broker's list of this channel's legs.
    var index = -1
    var finished = false
    /// Where the next read starts when no event has been queued yet.
    private var resume: ResumePoint
    /// History read but not yet queued (the queue was half full).
    private var backlog = Deque<StoredEvent>()
    /// True from the start: the subscribe route's first read is in flight, and live
    /// events arriving meanwhile (async stores) must be kept, not passed over.
    private var reading = true
    /// The last read reached the channel's end and no live event was passed over since.
    private var tailConfirmed = false
    /// Live events that arrived while a read was in flight (async stores).
    private var arrivedDuringRead: [StoredEvent] = []
    /// `?merge=1`: the token run being joined from history, not yet queued (it may go on
    /// in the next page). Nil without merged replay.
    private var run: TokenMerge.Run?

    init(subscription: Subscription, channel: String, resume: ResumePoint) {
        self.subscription = subscription
        connection = subscription.connection
        broker = subscription.broker
        multiplexed = subscription.multiplexed
        self.channel = channel
        self.resume = resume
        if case .after(let id) = resume { lastID = id }
        if subscription.mergeReplay {
            run = TokenMerge.Run(multiplexed: subscription.multiplexed,
                                 maxBytes: TokenMerge.maxMergedBytes(clientBuffer: subscription.broker.config.clientBufferBytes))
        }
    }

    /// The newest event taken from history: queued, or held in the merge run.
    private var readPosition: EventID? { run?.last?.id ?? lastID }


    /// The first page: gap notice, live start position, then the events.
    func start(with page: ReadResult) {
        if let gap = page.gap {
            subscription.sendGap(gap, channel: channel)
            // A resume point past the channel's newest ID (history this store lost, e.g.
            // a restarted memory engine): the channel's own IDs now lead, or every new
            // event below the old point would be passed over as already sent.
            if page.lastID.map({ gap.requested > $0 }) ?? true {
                lastID = page.lastID
                resume = page.lastID.map { .after($0) } ?? .earliest
            }
        }
        if resume == .live, lastID == nil { lastID = page.lastID }
        if page.finalID != nil, page.events.isEmpty {
            // Already complete for this client: nothing more will come on this channel.
            phase = .done
            finished = true
            subscription.legFinished()
            return
        }
        accept(page)
    }

    /// Queues a page read from the store; then pumps.
    func accept(_ page: ReadResult) {
        reading = false
        let position = readPosition
        backlog.append(contentsOf: page.events.drop(while: { e in position.map { e.id <= $0 } ?? false }))
        tailConfirmed = page.reachedEnd
        pump()
    }

    /// Moves history into the connection queue while it is at most half full; fetches
    /// the next page when the backlog is empty; goes live once the tail is confirmed.
    func pump() {
        guard phase == .replaying, !reading, connection.isOpen else { return }
        let room = broker.config.clientBufferBytes / 2
        while let e = backlog.first, connection.queuedBytes < room {
            backlog.removeFirst()
            broker.metrics.eventsReplayed += 1
            if run != nil {
                if broker.isMergeable(e), run!.admits(e) { run!.append(e); continue }
                if !sendRun() { return }
                if broker.isMergeable(e) { run!.append(e); continue }
            }
            if !send(e) { return }
        }
        guard backlog.isEmpty else { return }
        if tailConfirmed {
            guard sendRun() else { return }
            phase = .live
            backlog = Deque()  // a live leg keeps no replay storage
            let arrived = arrivedDuringRead
            arrivedDuringRead = []
            for e in arrived { live(e) }
        } else if connection.queuedBytes < room {
            fetchPage()
        }
    }

    private func fetchPage() {
        reading = true
        let from: ResumePoint = readPosition.map { .after($0) } ?? resume
        // The read holds the leg (not weak: a side table would slow every retain of it in the
        // fan-out). A leg whose subscription ended is `.done` (stop()), checked first, before
        // `connection` reaches the subscription.
        broker.store.read(channel, from: from, limit: broker.config.replayPageSize) { [self] result in
            guard self.phase != .done, self.connection.isOpen else { return }
            switch result {
            case .success(let page):
                if let gap = page.gap {
                    guard self.sendRun() else { return }  // the run came before the lost history
                    self.subscription.sendGap(gap, channel: self.channel)
                }
                self.accept(page)
            case .failure: self.connection.close()  // the client resumes from its last ID
            }
        }
    }

    /// A live event of this channel.
    func live(_ event: StoredEvent) {
        switch phase {
        case .live:
            broker.metrics.eventsDelivered += 1
            send(event)
        case .replaying:
            // The store has it; the next page will carry it. Only an async read in
            // flight may have missed it, so keep those for after the read.
            if reading { arrivedDuringRead.append(event) } else { tailConfirmed = false }
        case .done:
            break
        }
    }

    /// Queues the merge run, if any, as one event; false once the subscription has ended.
    private func sendRun() -> Bool {
        guard let held = run?.count, held > 0, let merged = run!.take() else { return true }
        broker.metrics.mergedEvents += held - 1
        return send(merged)
    }

    /// Queues one event unless already sent; false once the subscription has ended.
    @discardableResult
    private func send(_ event: StoredEvent) -> Bool {
        if let last = lastID, event.id <= last { return true }
        lastID = event.id
        guard multiplexed ? subscription.emitMultiplexed(event, from: self) : emit(event) else { return false }
        if event.final {
            phase = .done
            finished = true
            subscription.legFinished()
            return false
        }
        return true
    }

    /// Queues one event of a single-channel stream, its shared encoding as is; false once
    /// the subscription has ended.
    private func emit(_ event: StoredEvent) -> Bool {
        let token = broker.isMergeable(event)
        let result = connection.send(event.sse, conflate: event.conflate, token: token ? .event(event) : nil)
        bytesQueued &+= event.sse.count
        if case .queued = result { return connection.isOpen }
        return subscription.settle(result)
    }

    func stop() {
        phase = .done
        backlog.removeAll()
        arrivedDuringRead.removeAll()
        _ = run?.take()
    }
}
