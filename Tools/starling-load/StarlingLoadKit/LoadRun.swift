// LoadRun: one run of a scenario on one libuv loop, as a sequence of phases driven by
// a 10 ms supervisor timer: connect subscribers at the ramp rate → (replay: fill the
// channel first) → publish for the duration → drain until every healthy subscriber has
// every event → report. All state lives on the loop's thread.
import Histogram
import StarlingCore

public final class LoadRun {
    enum Phase { case filling, connecting, settling, publishing, draining, holding, done }

    public let config: LoadConfig
    let loop = UVLoop()
    private var phase = Phase.connecting
    private var phaseStartNs: UInt64 = 0
    private var supervisor: UVTimer?
    private var waker: UVTimer?

    private var subscribers: [SubscriberClient] = []
    private var publishers: [PublisherClient] = []
    private var opened = 0
    private var streaming = 0
    private var everStreamed = Set<Int>()
    private var settled = 0
    private var lastProgressNs: UInt64 = 0

    // Per channel: next seq to publish, answered publishes, refused seqs, deliveries to
    // healthy subscribers, and healthy subscribers streaming now.
    private var nextSeq: [UInt64]
    private var failed: [Set<UInt64>]
    private var answered = 0
    private var delivered: [Int]
    private var healthy: [Int]
    private var issued = 0
    private var channelCursor = 0

    private var histogram = Histogram<UInt64>(highestTrackableValue: 120_000_000_000, numberOfSignificantValueDigits: .three)
    private var recordLatency = false
    private var firstDeliveryNs: UInt64 = 0
    private var lastDeliveryNs: UInt64 = 0
    private var publishStartNs: UInt64 = 0
    private var publishEndNs: UInt64 = 0
    private var fillStartNs: UInt64 = 0
    private var fillEndNs: UInt64 = 0
    private var report: LoadReport
    private var sampleBefore: ServerSample?
    private var sampleConnected: ServerSample?
    private var sampleStart: ServerSample?

    public init(_ config: LoadConfig) {
        self.config = config
        nextSeq = Array(repeating: 0, count: config.channels)
        failed = Array(repeating: [], count: config.channels)
        delivered = Array(repeating: 0, count: config.channels)
        healthy = Array(repeating: 0, count: config.channels)
        report = LoadReport(scenario: config.scenario.rawValue, target: "\(config.host):\(config.port)",
                            subscribers: config.subscribers, slowSubscribers: config.slowSubscribers,
                            channels: config.channels, publishers: config.publishers,
                            payloadBytes: config.payloadSize, requestedRate: config.rate)
    }

    /// Runs the scenario to the end and returns its report. Blocks the calling thread.
    public func execute() -> LoadReport {
        System.raiseFileLimit()
        sampleBefore = probe()
        let slow = config.scenario == .slow ? min(config.slowSubscribers, config.subscribers) : 0
        report.slowSubscribers = slow
        for i in 0..<config.subscribers {
            // Slow subscribers are the last ones, so the healthy ones keep round-robin channels.
            subscribers.append(SubscriberClient(run: self, index: i, channel: i % config.channels,
                                                isSlow: i >= config.subscribers - slow,
                                                resumeFrom: config.scenario == .replay ? config.replayFrom : nil))
        }
        if config.publishes || config.scenario == .replay {
            for i in 0..<max(1, min(config.publishers, config.channels)) {
                let p = PublisherClient(run: self, index: i)
                publishers.append(p)
                p.connect()
            }
        }
        report.publishers = publishers.count
        enter(config.scenario == .replay ? .filling : .connecting)
        supervisor = loop.every(ms: 10) { [unowned self] in supervise() }
        loop.onEveryTurn { [unowned self] in pump() }
        loop.run()
        return report
    }

    private func probe() -> ServerSample? {
        config.serverPID.flatMap { ServerProbe.sample(pids: [$0] + config.alsoMeasuredPIDs) }
    }

    private func enter(_ p: Phase) {
        phase = p
        phaseStartNs = System.monotonicNs()
        switch p {
        case .publishing:
            sampleStart = probe()
            publishStartNs = phaseStartNs
            recordLatency = true
            if config.rate != nil { waker = loop.every(ms: 1) {} }  // keeps the loop turning between events
        case .filling:
            fillStartNs = phaseStartNs
        case .draining:
            publishEndNs = phaseStartNs
            waker?.cancel()
        case .holding:
            sampleStart = probe()
        case .connecting where config.scenario == .replay:
            sampleStart = probe()
            publishStartNs = phaseStartNs
        default:
            break
        }
    }

    private var elapsed: Double { Double(System.monotonicNs() - phaseStartNs) / 1e9 }

    // MARK: phases

    private func supervise() {
        showProgress()
        switch phase {
        case .filling:
            let issuedAll = nextSeq.allSatisfy { $0 >= UInt64(config.replayEvents) }
            if issuedAll, !publishers.contains(where: { $0.inFlightCount > 0 }) {
                fillEndNs = System.monotonicNs()
                enter(.connecting)
            }
        case .connecting:
            openSubscribers()
            let quiet = elapsed > Double(config.subscribers) / config.rampPerSecond + 15
            if config.scenario == .replay {
                if allComplete() || elapsed > config.duration + config.drainSeconds { finish() }
            } else if opened == config.subscribers, (settledCount() == config.subscribers || quiet) {
                sampleConnected = probe()
                enter(.settling)
            }
        case .settling:
            // Let the last subscriptions register before the first event (Nchan answers
            // the head as it subscribes).
            if elapsed > 0.3 { enter(config.publishes ? .publishing : .holding) }
        case .publishing:
            if elapsed >= config.duration { enter(.draining) }
        case .draining:
            let waiting = publishers.contains { $0.inFlightCount > 0 }
            if (!waiting && allComplete()) || elapsed > config.drainSeconds { finish() }
        case .holding:
            if elapsed >= config.duration { finish() }
        case .done:
            break
        }
    }

    private func settledCount() -> Int { settled }

    private func openSubscribers() {
        let due = min(config.subscribers, Int(elapsed * config.rampPerSecond) + 1)
        while opened < due {
            subscribers[opened].connect()
            opened += 1
        }
    }

    private func allComplete() -> Bool {
        for s in subscribers where !s.isSlow {
            if !s.account.isComplete(through: nextSeq[s.channel]) { return false }
        }
        return true
    }

    /// Called before the loop blocks: top up the publishers, then one write each.
    private func pump() {
        switch phase {
        case .filling:
            fill()
        case .publishing:
            if let rate = config.rate { publishAtRate(rate) } else { publishFlatOut() }
        default:
            return
        }
        for p in publishers { p.flush() }
    }

    private func publisherFor(_ channel: Int) -> PublisherClient { publishers[channel % publishers.count] }

    private func issue(_ channel: Int) {
        if nextSeq[channel] == config.dropSeq { nextSeq[channel] += 1 }
        publisherFor(channel).publish(channel: channel, seq: nextSeq[channel])
        nextSeq[channel] += 1
        issued += 1
    }

    private func fill() {
        for _ in 0..<config.channels {
            let c = channelCursor
            channelCursor = (channelCursor + 1) % config.channels
            while nextSeq[c] < UInt64(config.replayEvents), publisherFor(c).hasRoom { issue(c) }
        }
    }

    private func publishAtRate(_ rate: Double) {
        let due = Int(rate * Double(System.monotonicNs() - publishStartNs) / 1e9)
        var blocked = 0
        while issued < due, blocked < config.channels {
            let c = channelCursor
            channelCursor = (channelCursor + 1) % config.channels
            if publisherFor(c).hasRoom { issue(c); blocked = 0 } else { blocked += 1 }
        }
    }

    /// Flat out: each channel may run `window` events ahead of its healthy subscribers.
    private func publishFlatOut() {
        for _ in 0..<config.channels {
            let c = channelCursor
            channelCursor = (channelCursor + 1) % config.channels
            let subs = max(1, healthy[c])
            let p = publisherFor(c)
            while p.hasRoom, Int(nextSeq[c]) * subs - delivered[c] < config.window * subs { issue(c) }
        }
    }

    // MARK: events from the clients

    func subscriberStreaming(_ s: SubscriberClient) {
        streaming += 1
        if !s.isSlow { healthy[s.channel] += 1 }
        if everStreamed.insert(s.index).inserted { settled += 1; report.connected += 1 }
    }

    func subscriberFailed(_ s: SubscriberClient, _ error: String) {
        if !everStreamed.contains(s.index) { settled += 1; report.connectErrors += 1 }
        note(error)
    }

    func subscriberClosed(_ s: SubscriberClient, error: String?, wasStreaming: Bool) {
        guard phase != .done else { return }
        if wasStreaming {
            streaming -= 1
            if s.isSlow {
                report.slowDisconnects += 1
                return
            }
            healthy[s.channel] -= 1
            report.disconnects += 1
            // Its outstanding events no longer hold the flat-out window back.
            delivered[s.channel] += max(0, Int(nextSeq[s.channel]) - Int(s.account.next))
            if config.reconnect { loop.after(ms: 100) { [weak self, weak s] in if self?.phase != .done { s?.connect() } } }
        } else if !everStreamed.contains(s.index) {
            settled += 1
            report.connectErrors += 1
            if let error { note(error) }
        }
    }

    func delivered(channel: Int, latencyNs: UInt64) {
        delivered[channel] += 1
        report.delivered += 1
        let now = System.monotonicNs()
        if firstDeliveryNs == 0 { firstDeliveryNs = now }
        lastDeliveryNs = now
        if recordLatency { _ = histogram.record(max(1, latencyNs)) }
    }

    func foreignEvent(_ m: SSEMessage) { report.foreignEvents += 1 }

    func publisherConnected(_ p: PublisherClient) {}

    func publisherFailed(_ p: PublisherClient, _ error: String) { note("publisher: \(error)") }

    func publisherClosed(_ p: PublisherClient, error: String?) {
        guard phase != .done else { return }
        note("publisher \(p.index) closed: \(error ?? "by the server")")
    }

    func publishAnswered(channel: Int, seq: UInt64, ok: Bool, status: Int) {
        answered += 1
        if ok { report.published += 1 } else {
            report.publishErrors += 1
            failed[channel].insert(seq)
            if report.publishErrors <= 3 { note("publish \(seq) on channel \(channel): HTTP \(status)") }
        }
    }

    private func note(_ error: String) {
        if report.errors.count < 20, !report.errors.contains(error) { report.errors.append(error) }
    }

    // MARK: the end

    private func finish() {
        let end = probe()
        let endNs = System.monotonicNs()
        phase = .done
        supervisor?.cancel()
        waker?.cancel()
        loop.stopTurnHooks()
        account(endNs: endNs, end: end)
        for s in subscribers { s.close() }
        for p in publishers { p.close() }
        if System.stderrIsTerminal, config.progress { System.writeStderr("\n") }
    }

    private func account(endNs: UInt64, end: ServerSample?) {
        for s in subscribers where !s.isSlow {
            let a = s.account
            report.loss += a.lost(published: nextSeq[s.channel], failed: failed[s.channel])
            report.duplicates += a.duplicates
            report.reordered += a.reordered
            report.heartbeats += s.heartbeats
        }
        if config.scenario == .replay {
            report.publishSeconds = Double(fillEndNs - fillStartNs) / 1e9
        } else if publishStartNs > 0, publishEndNs > 0 {
            report.publishSeconds = Double(publishEndNs - publishStartNs) / 1e9
        }
        if report.publishSeconds > 0 { report.publishPerSecond = Double(report.published) / report.publishSeconds }
        let deliveryStart = publishStartNs > 0 ? publishStartNs : firstDeliveryNs
        if report.delivered > 0, lastDeliveryNs > deliveryStart {
            report.deliverySeconds = Double(lastDeliveryNs - deliveryStart) / 1e9
            report.deliveredPerSecond = Double(report.delivered) / report.deliverySeconds
        }
        if histogram.totalCount > 0 {
            report.latency = LatencySummary(count: histogram.totalCount,
                                            p50Us: us(histogram.valueAtPercentile(50)), p90Us: us(histogram.valueAtPercentile(90)),
                                            p99Us: us(histogram.valueAtPercentile(99)), p999Us: us(histogram.valueAtPercentile(99.9)),
                                            maxUs: us(histogram.max))
        }
        if let pid = config.serverPID, let start = sampleStart, let end {
            let cpu = end.cpuSeconds - start.cpuSeconds
            let wall = Double(end.atNs - start.atNs) / 1e9
            let before = sampleBefore?.rssBytes ?? 0
            let connected = sampleConnected?.rssBytes ?? end.rssBytes
            report.server = ServerFigures(
                pid: pid, cpuSeconds: cpu, cpuPercent: wall > 0 ? 100 * cpu / wall : 0,
                eventsPerCPUSecond: cpu > 0 && report.delivered > 0 ? Double(report.delivered) / cpu : nil,
                rssBeforeBytes: before, rssConnectedBytes: connected, rssEndBytes: end.rssBytes,
                rssPerConnectionBytes: report.connected > 0 && config.scenario != .replay
                    ? Double(connected - before) / Double(report.connected) : nil)
        }
    }

    private func us(_ ns: UInt64) -> Double { Double(ns) / 1000 }

    private func showProgress() {
        guard config.progress, System.stderrIsTerminal else { return }
        let now = System.monotonicNs()
        guard now - lastProgressNs >= 1_000_000_000 else { return }
        lastProgressNs = now
        let p99 = histogram.totalCount > 0 ? Double(histogram.valueAtPercentile(99)) / 1e6 : 0
        let line = String(format: "\r[%@ %4.0fs] subscribers %d/%d  published %d  delivered %d  p99 %.2f ms  errors %d   ",
                          "\(phase)", elapsed, streaming, config.subscribers, report.published, report.delivered, p99,
                          report.connectErrors + report.publishErrors)
        System.writeStderr(line)
    }
}
