// PublisherClient: one keep-alive connection publishing with HTTP pipelining. It owns
// its channels outright (local channel i belongs to publisher i % P), so each channel's seq
// order is the order of one connection's requests, which the broker must keep.
// Answers come back in request order, so a FIFO says which seq each answer is for.

final class PublisherClient: HTTPClientDelegate {
    unowned let run: LoadRun
    let index: Int
    private var connection: HTTPClientConnection?
    private(set) var connected = false
    /// (channel, seq, when it was queued) of each request whose answer has not come back
    /// yet, oldest first.
    private var inFlight: [(channel: Int, seq: UInt64, sentNs: UInt64)] = []
    private var inFlightHead = 0
    private var outbound: [UInt8] = []
    private var lastStatus = 0
    private let bodyParts: (String, String)

    init(run: LoadRun, index: Int) {
        self.run = run
        self.index = index
        bodyParts = run.config.templates.bodyParts
    }

    var inFlightCount: Int { inFlight.count - inFlightHead }
    var hasRoom: Bool { connected && inFlightCount < run.config.pipeline }
    /// Its connection failed or was closed: it will publish nothing more.
    var isGone: Bool { connection == nil }

    func connect() {
        let c = HTTPClientConnection(loop: run.loop, readBuffer: run.readBuffer, delegate: self)
        c.deliversBody = false
        connection = c
        if let error = c.connect(host: run.config.host, port: run.config.port, source: run.config.sources.first) {
            connection = nil
            run.publisherFailed(self, error)
        }
    }

    func close() {
        connected = false
        connection?.close()
        connection = nil
    }

    /// Queues one publish of `seq` on `channel`; it is written at the next `flush`.
    func publish(channel: Int, seq: UInt64) {
        let config = run.config
        let sentNs = System.monotonicNs()
        let payload = Payload.make(seq: seq, sentNs: sentNs, size: config.payloadSize)
        let body = bodyParts.0 + payload + bodyParts.1
        var head = "POST \(config.templates.publishPath(run.channelName(channel))) HTTP/1.1\r\n"
        head += "Host: \(config.host):\(config.port)\r\nContent-Type: \(config.templates.contentType)\r\n"
        for (k, v) in config.extraHeaders { head += "\(k): \(v)\r\n" }
        head += "Content-Length: \(body.utf8.count)\r\n\r\n"
        outbound.append(contentsOf: head.utf8)
        outbound.append(contentsOf: body.utf8)
        inFlight.append((channel, seq, sentNs))
    }

    /// Writes every queued request at once: one syscall per loop turn, not per event.
    func flush() {
        guard !outbound.isEmpty, let c = connection else { return }
        c.write(outbound)
        outbound.removeAll(keepingCapacity: true)
    }

    func connectionDidConnect(_ c: HTTPClientConnection) {
        connected = true
        run.publisherConnected(self)
    }

    func connection(_ c: HTTPClientConnection, didReceiveHead status: Int) { lastStatus = status }

    func connection(_ c: HTTPClientConnection, didReceiveBody bytes: [UInt8]) {}

    func connectionDidCompleteResponse(_ c: HTTPClientConnection) {
        guard inFlightHead < inFlight.count else { return }
        let done = inFlight[inFlightHead]
        inFlightHead += 1
        if inFlightHead > 4096, inFlightHead * 2 > inFlight.count {
            inFlight.removeFirst(inFlightHead)
            inFlightHead = 0
        }
        run.publishAnswered(channel: done.channel, seq: done.seq, ok: (200..<300).contains(lastStatus), status: lastStatus,
                            latencyNs: System.monotonicNs() - done.sentNs)
    }

    func connection(_ c: HTTPClientConnection, didCloseWith error: String?) {
        connected = false
        connection = nil
        // Whatever had no answer may or may not be stored: the accounting must know.
        while inFlightHead < inFlight.count {
            let lost = inFlight[inFlightHead]
            inFlightHead += 1
            run.publishAnswered(channel: lost.channel, seq: lost.seq, ok: false, status: 0, latencyNs: nil)
        }
        run.publisherClosed(self, error: error)
    }
}
