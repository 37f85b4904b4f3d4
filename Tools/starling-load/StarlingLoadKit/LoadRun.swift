// LoadRun: one run of a scenario (or a worker's share of one) on one event loop, as a
// sequence of phases driven by a 10 ms supervisor timer: connect subscribers at the ramp
// rate → (replay: fill the channels first) → publish for the duration → drain until every
// healthy subscriber has every event → report. All state lives on the loop's thread.
// A worker of `--procs N` stops before its measured phase, says "ready" on stdout and
// waits for its parent's SIGUSR1, so every worker measures the same window.
import Histogram
import StarlingCore
import StarlingLoop
#if canImport(Glibc)
import Glibc
#endif

public final class LoadRun {
    enum Phase { case filling, connecting, settling, ready, publishing, draining, holding, done }

    public let config: LoadConfig
    let share: WorkerShare
    /// `keepsRunning: false`: `run` returns once every connection and timer is closed.
    let loop = EventLoop(keepsRunning: false)
    let readBuffer = ReadBuffer()
    private var phase = Phase.connecting
    /// Where a worker goes once its parent says go.
    private var afterReady = Phase.publishing
    private var phaseStartNs: UInt64 = 0
    private var supervisor: LoopTimer?
    private var waker: LoopTimer?
    private let parentPID = getppid()

    private var subscribers: [SubscriberClient] = []
    private var publishers: [PublisherClient] = []
    private var opened = 0
    private var streaming = 0
    private var everStreamed = Set<Int>()
    private var settled = 0
    private var lastProgressNs: UInt64 = 0

    // Per local channel: next seq to publish, refused seqs, deliveries to healthy
    // subscribers, and healthy subscribers streaming now.
    private var nextSeq: [UInt64]
    private var failed: [Set<UInt64>]
    private var delivered: [Int]
    private var healthy: [Int]
    private var issued = 0
    private var channelCursor = 0

    private var histogram = latencyHistogram()
    /// Publish round trips (request queued → its answer read), pipelining included.
    private var publishHistogram = latencyHistogram()
    private var recordLatency = false
    private var firstDeliveryNs: UInt64 = 0
    private var lastDeliveryNs: UInt64 = 0
    private var publishStartNs: UInt64 = 0
    private var publishEndNs: UInt64 = 0
    private var fillStartNs: UInt64 = 0
    private var fillEndNs: UInt64 = 0
    private var report: LoadReport
    /// The cores whose /proc/stat times tell whether anything else ran beside the run.
    private let cores: [Int]
    private var sampleBefore: ServerSample?
    private var sampleConnected: ServerSample?
    private var sampleStart: ServerSample?
    private var clientCPUAtStart = 0.0

    public init(_ config: LoadConfig) {
        self.config = config
        share = WorkerShare(config)
        let n = share.channels.count
        nextSeq = Array(repeating: 0, count: n)
        failed = Array(repeating: [], count: n)
        delivered = Array(repeating: 0, count: n)
        healthy = Array(repeating: 0, count: n)
        cores = config.serverPID.map { pid in
            Array(Set(ServerProbe.allowedCores(pid: pid) + ServerProbe.allowedCores(pid: getpid()))).sorted()
        } ?? []
        report = LoadReport(scenario: config.scenario.rawValue, target: "\(config.host):\(config.port)",
                            subscribers: share.subscribers.count, slowSubscribers: share.slowSubscribers,
                            channels: n, publishers: 0, payloadBytes: config.payloadSize, requestedRate: share.rate)
    }

    /// The name of local channel `channel`.
    func channelName(_ channel: Int) -> String { config.channelName(share.channels[channel]) }

    /// Runs the scenario to the end and returns its report. Blocks the calling thread.
    public func execute() -> LoadReport {
        System.raiseFileLimit()
        sampleBefore = probe()
        for slot in share.subscribers {
            subscribers.append(SubscriberClient(run: self, slot: slot,
                                                resumeFrom: config.scenario == .replay ? config.replayFrom : nil))
        }
        if config.publishes || config.scenario == .replay {
            for i in 0..<share.publishers {
                let p = PublisherClient(run: self, index: i)
                publishers.append(p)
                p.connect()
            }
        }
        report.publishers = publishers.count
        if config.part != nil {
            loop.onSignal(SIGUSR1) { [unowned self] in if phase == .ready { enter(afterReady) } }
        }
        enter(config.scenario == .replay ? .filling : .connecting)
        supervisor = loop.every(ms: 10) { [unowned self] in supervise() }
        loop.onEveryTurn { [unowned self] in pump() }
        loop.run()
        return report
    }

    private func probe() -> ServerSample? {
        config.serverPID.flatMap { ServerProbe.sample(pids: [$0] + config.alsoMeasuredPIDs, cores: cores) }
    }

    /// Enters `p`, or, in a worker, first waits for the parent's go when `p` is measured.
    private func enterMeasured(_ p: Phase) {
        guard config.part != nil else { return enter(p) }
        afterReady = p
        enter(.ready)
        System.writeStdout("ready\n")
    }

    private func enter(_ p: Phase) {
        phase = p
        phaseStartNs = System.monotonicNs()
        switch p {
        case .publishing:
            startMeasuring()
            publishStartNs = phaseStartNs
            recordLatency = true
            if share.rate != nil { waker = loop.every(ms: 1) {} }  // keeps the loop turning between events
        case .filling:
            fillStartNs = phaseStartNs
        case .draining:
            publishEndNs = phaseStartNs
            waker?.cancel()
        case .holding:
            startMeasuring()
        case .connecting where config.scenario == .replay:
            startMeasuring()
            publishStartNs = phaseStartNs
        default:
            break
        }
    }

    private func startMeasuring() {
        sampleStart = probe()
        clientCPUAtStart = System.ownCPUSeconds()
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
                enterMeasured(.connecting)
            } else if publishers.allSatisfy(\.isGone) {
                finish()  // no publisher left: the channels can never fill
            }
        case .connecting:
            openSubscribers()
            let quiet = elapsed > Double(share.subscribers.count) / share.rampPerSecond + 15
            if config.scenario == .replay {
                if allComplete() || elapsed > config.duration + config.drainSeconds { finish() }
            } else if opened == subscribers.count, (settled == subscribers.count || quiet) {
                sampleConnected = probe()
                enter(.settling)
            }
        case .settling:
            // Let the last subscriptions register before the first event (Nchan answers
            // the head as it subscribes).
            if elapsed > 0.3 { enterMeasured(config.publishes ? .publishing : .holding) }
        case .ready:
            if getppid() != parentPID { finish() }  // the parent is gone: nobody will say go
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

    private func openSubscribers() {
        let due = min(subscribers.count, Int(elapsed * share.rampPerSecond) + 1)
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
            if let rate = share.rate { publishAtRate(rate) } else { publishFlatOut() }
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
        for _ in 0..<nextSeq.count {
            let c = channelCursor
            channelCursor = (channelCursor + 1) % nextSeq.count
            while nextSeq[c] < UInt64(config.replayEvents), publisherFor(c).hasRoom { issue(c) }
        }
    }

    private func publishAtRate(_ rate: Double) {
        let due = Int(rate * Double(System.monotonicNs() - publishStartNs) / 1e9)
        var blocked = 0
        while issued < due, blocked < nextSeq.count {
            let c = channelCursor
            channelCursor = (channelCursor + 1) % nextSeq.count
            if publisherFor(c).hasRoom { issue(c); blocked = 0 } else { blocked += 1 }
        }
    }

    /// Flat out: each channel may run `window` events ahead of its healthy subscribers.
    private func publishFlatOut() {
        for _ in 0..<nextSeq.count {
            let c = channelCursor
            channelCursor = (channelCursor + 1) % nextSeq.count
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

    func publisherFailed(_ p: PublisherClient, _ error: String) {
        report.publisherFailures += 1
        note("publisher: \(error)")
    }

    func publisherClosed(_ p: PublisherClient, error: String?) {
        guard phase != .done else { return }
        report.publisherFailures += 1
        note("publisher \(p.index) closed: \(error ?? "by the server")")
    }

    func publishAnswered(channel: Int, seq: UInt64, ok: Bool, status: Int, latencyNs: UInt64?) {
        if ok {
            report.published += 1
            if recordLatency, let latencyNs { _ = publishHistogram.record(max(1, latencyNs)) }
        } else {
            report.publishErrors += 1
            failed[channel].insert(seq)
            if report.publishErrors <= 3 { note("publish \(seq) on \(channelName(channel)): HTTP \(status)") }
        }
    }

    private func note(_ error: String) {
        if report.errors.count < 20, !report.errors.contains(error) { report.errors.append(error) }
    }

    // MARK: the end

    private func finish() {
        let end = probe()
        let clientCPU = System.ownCPUSeconds() - clientCPUAtStart
        let endNs = System.monotonicNs()
        phase = .done
        supervisor?.cancel()
        waker?.cancel()
        account(endNs: endNs, end: end, clientCPU: clientCPU)
        report.judge()
        for s in subscribers { s.close() }
        for p in publishers { p.close() }
        if System.stderrIsTerminal, config.progress { System.writeStderr("\n") }
    }

    private func account(endNs: UInt64, end: ServerSample?, clientCPU: Double) {
        for s in subscribers where !s.isSlow {
            let a = s.account
            report.loss += a.lost(published: nextSeq[s.channel], failed: failed[s.channel])
            report.duplicates += a.duplicates
            report.reordered += a.reordered
            report.heartbeats += s.heartbeats
            report.subscriberReads += s.eventReads
        }
        if report.subscriberReads > 0 { report.eventsPerRead = Double(report.delivered) / Double(report.subscriberReads) }
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
        if histogram.totalCount > 0 { report.latency = LatencySummary(histogram) }
        if publishHistogram.totalCount > 0 { report.publishLatency = LatencySummary(publishHistogram) }
        if config.part != nil {
            report.latencyBuckets = histogram.recordedValues().map { [$0.value, $0.count] }
            report.publishLatencyBuckets = publishHistogram.recordedValues().map { [$0.value, $0.count] }
        }
        if let start = sampleStart {
            let wall = Double(endNs - start.atNs) / 1e9
            report.clientCPUSeconds = clientCPU
            report.clientCPUPercent = wall > 0 ? 100 * clientCPU / wall : 0
        }
        if let pid = config.serverPID, let start = sampleStart, let end {
            report.server = ServerFigures(pid: pid, start: start, end: end, rssBefore: sampleBefore?.rssBytes, rssConnected: sampleConnected?.rssBytes,
                                          delivered: report.delivered, subscribersConnected: report.connected,
                                          perConnection: config.scenario != .replay, clientCPUSeconds: clientCPU, cores: cores)
        }
    }

    private func showProgress() {
        guard config.progress, System.stderrIsTerminal else { return }
        let now = System.monotonicNs()
        guard now - lastProgressNs >= 1_000_000_000 else { return }
        lastProgressNs = now
        let p99 = histogram.totalCount > 0 ? Double(histogram.valueAtPercentile(99)) / 1e6 : 0
        let line = String(format: "\r[%@ %4.0fs] subscribers %d/%d  published %d  delivered %d  p99 %.2f ms  errors %d   ",
                          "\(phase)", elapsed, streaming, subscribers.count, report.published, report.delivered, p99,
                          report.connectErrors + report.publishErrors)
        System.writeStderr(line)
    }
}
