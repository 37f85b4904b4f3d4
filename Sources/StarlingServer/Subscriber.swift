// Subscriber: one SSE subscription to one channel. It replays history in pages, paced
// by its connection's queue, then switches to live delivery with no gap and no
// duplicate: every event it sends has an ID above the last one sent.
import DequeModule
import StarlingCore
import StarlingHTTP
import StarlingStore

final class Subscriber: StreamDelegate {
    enum Phase { case replaying, live, done }

    unowned let broker: Broker
    let connection: Connection
    let channel: String
    var index = -1
    var phase = Phase.replaying
    /// The newest event ID queued to this client.
    var lastID: EventID?
    private let resume: ResumePoint
    /// History read but not yet queued (the queue was half full).
    private var backlog = Deque<StoredEvent>()
    private var reading = false
    /// The last read reached the channel's end and no live event was passed over since.
    private var tailConfirmed = false
    /// Live events that arrived while a read was in flight (async stores).
    private var arrivedDuringRead: [StoredEvent] = []

    init(broker: Broker, connection: Connection, channel: String, resume: ResumePoint) {
        self.broker = broker
        self.connection = connection
        self.channel = channel
        self.resume = resume
        if case .after(let id) = resume { lastID = id }
    }

    /// Queues a page read from the store; then pumps.
    func accept(_ page: ReadResult) {
        reading = false
        backlog.append(contentsOf: page.events.drop(while: { e in lastID.map { e.id <= $0 } ?? false }))
        tailConfirmed = page.reachedEnd
        pump()
    }

    /// Moves history into the connection queue while it is at most half full; fetches the
    /// next page when the backlog is empty; goes live once the tail is confirmed.
    func pump() {
        guard phase == .replaying, !reading, connection.isOpen else { return }
        let room = broker.config.clientBufferBytes / 2
        while let e = backlog.first, connection.queuedBytes < room {
            backlog.removeFirst()
            broker.metrics.eventsReplayed += 1
            if !send(e) { return }
        }
        guard backlog.isEmpty else { return }
        if tailConfirmed {
            phase = .live
            let arrived = arrivedDuringRead
            arrivedDuringRead = []
            for e in arrived { live(e) }
        } else if connection.queuedBytes < room {
            fetchPage()
        }
    }

    func fetchPage() {
        reading = true
        let from: ResumePoint = lastID.map { .after($0) } ?? resume
        broker.store.read(channel, from: from, limit: broker.config.replayPageSize) { [weak self] result in
            guard let self, self.connection.isOpen else { return }
            switch result {
            case .success(let page): self.accept(page)
            case .failure: self.connection.close()  // the client resumes from its last ID
            }
        }
    }

    /// A live event of this channel.
    func live(_ event: StoredEvent) {
        switch phase {
        case .live:
            broker.metrics.eventsDelivered += 1
            _ = send(event)
        case .replaying:
            // The store has it; the next page will carry it. Only an async read in
            // flight may have missed it, so keep those for after the read.
            if reading { arrivedDuringRead.append(event) } else { tailConfirmed = false }
        case .done:
            break
        }
    }

    /// Queues one event unless already sent; false once the subscription has ended.
    @discardableResult
    private func send(_ event: StoredEvent) -> Bool {
        if let last = lastID, event.id <= last { return true }
        lastID = event.id
        switch connection.send(event.sse, conflate: event.conflate) {
        case .queued: break
        case .conflated(let dropped): broker.metrics.conflatedDrops += dropped
        case .overflow:
            broker.metrics.slowConsumerDisconnects += 1
            connection.close()
            return false
        }
        if event.final {
            phase = .done
            connection.finish()
            return false
        }
        return true
    }

    func streamHasRoom(_ connection: Connection) { pump() }

    func streamDidClose(_ connection: Connection) {
        phase = .done
        backlog.removeAll()
        broker.remove(self)
    }
}
