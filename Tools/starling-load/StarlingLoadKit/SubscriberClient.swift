// SubscriberClient: one SSE subscriber connection. Bytes go through the broker's own
// SSEParser; each event's payload gives its latency and its seq for the stream account.
// A dropped connection reconnects with its Last-Event-ID, as an EventSource would.
import StarlingCore

final class SubscriberClient: HTTPClientDelegate {
    enum State { case idle, connecting, streaming, closed }

    unowned let run: LoadRun
    /// Position among all subscribers of the run (its source address).
    let index: Int
    /// The run's local channel index.
    let channel: Int
    /// Stops reading after the first bytes (the slow scenario); kept out of the accounts.
    let isSlow: Bool
    let resumeFrom: String?
    private(set) var state = State.idle
    private var connection: HTTPClientConnection?
    private var parser = SSEParser()
    private(set) var account = StreamAccount()
    private(set) var lastEventID: String?
    private(set) var heartbeats = 0
    private var countedHeartbeats = 0
    /// Reads that carried at least one event.
    private(set) var eventReads = 0

    init(run: LoadRun, slot: SubscriberSlot, resumeFrom: String?) {
        self.run = run
        index = slot.index
        channel = slot.channel
        isSlow = slot.isSlow
        self.resumeFrom = resumeFrom
    }

    func connect() {
        state = .connecting
        parser = SSEParser()
        let c = HTTPClientConnection(loop: run.loop, readBuffer: run.readBuffer, delegate: self)
        connection = c
        let config = run.config
        let source = config.sources.isEmpty ? nil : config.sources[index % config.sources.count]
        if let error = c.connect(host: config.host, port: config.port, source: source) {
            connection = nil
            state = .closed
            run.subscriberFailed(self, error)
        }
    }

    func close() {
        state = .closed
        connection?.close()
        connection = nil
    }

    func connectionDidConnect(_ c: HTTPClientConnection) {
        var head = "GET \(run.config.templates.subscribePath(run.channelName(channel))) HTTP/1.1\r\n"
        head += "Host: \(run.config.host):\(run.config.port)\r\nAccept: text/event-stream\r\n"
        if let id = lastEventID ?? resumeFrom, !id.isEmpty { head += "Last-Event-ID: \(id)\r\n" }
        for (k, v) in run.config.extraHeaders { head += "\(k): \(v)\r\n" }
        head += "\r\n"
        c.write(Array(head.utf8))
        if isSlow { c.setReceiveBuffer(4096) }
    }

    func connection(_ c: HTTPClientConnection, didReceiveHead status: Int) {
        guard status == 200 else {
            run.subscriberFailed(self, "HTTP \(status)")
            close()
            return
        }
        state = .streaming
        run.subscriberStreaming(self)
    }

    func connection(_ c: HTTPClientConnection, didReceiveBody bytes: [UInt8]) {
        if isSlow { c.stopReading(); return }
        let messages = parser.feed(bytes)
        if parser.comments != countedHeartbeats {
            heartbeats += parser.comments - countedHeartbeats
            countedHeartbeats = parser.comments
        }
        guard !messages.isEmpty else { return }
        eventReads += 1
        let now = System.monotonicNs()
        for m in messages {
            if let id = m.id { lastEventID = id }
            guard let p = Payload.read(m.data) else {
                run.foreignEvent(m)
                continue
            }
            account.see(p.seq)
            run.delivered(channel: channel, latencyNs: now >= p.sentNs ? now - p.sentNs : 0)
        }
    }

    func connectionDidCompleteResponse(_ c: HTTPClientConnection) {}

    func connection(_ c: HTTPClientConnection, didCloseWith error: String?) {
        connection = nil
        let wasStreaming = state == .streaming
        state = .closed
        run.subscriberClosed(self, error: error, wasStreaming: wasStreaming)
    }
}
