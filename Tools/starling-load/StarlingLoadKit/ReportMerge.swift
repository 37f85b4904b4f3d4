// ReportMerge: one report from the reports of a `--procs` run's workers. Counts add up;
// rates add up (the workers measure one window: they start it together); durations are
// the longest; latency percentiles come from the workers' HdrHistograms merged into one
// (not from their percentiles); the server's figures are over the union of the workers'
// windows (earliest start sample to latest end sample of the one server process).
import Histogram

extension LoadReport {
    public static func merging(_ parts: [(worker: Int, report: LoadReport)], config: LoadConfig,
                               failures: [String]) -> LoadReport {
        var r = LoadReport(scenario: config.scenario.rawValue, target: "\(config.host):\(config.port)",
                           subscribers: config.subscribers, slowSubscribers: 0, channels: config.channels,
                           publishers: 0, payloadBytes: config.payloadSize, requestedRate: config.rate)
        var histogram = latencyHistogram(), publishHistogram = latencyHistogram()
        var maxUs = 0.0, publishMaxUs = 0.0
        for (k, p) in parts {
            r.slowSubscribers += p.slowSubscribers
            r.publishers += p.publishers
            r.connected += p.connected
            r.connectErrors += p.connectErrors
            r.disconnects += p.disconnects
            r.slowDisconnects += p.slowDisconnects
            r.published += p.published
            r.publishErrors += p.publishErrors
            r.publisherFailures += p.publisherFailures
            r.publishSeconds = max(r.publishSeconds, p.publishSeconds)
            r.publishPerSecond += p.publishPerSecond
            r.delivered += p.delivered
            r.deliverySeconds = max(r.deliverySeconds, p.deliverySeconds)
            r.deliveredPerSecond += p.deliveredPerSecond
            r.subscriberReads += p.subscriberReads
            r.loss += p.loss
            r.duplicates += p.duplicates
            r.reordered += p.reordered
            r.foreignEvents += p.foreignEvents
            r.heartbeats += p.heartbeats
            r.clientCPUSeconds += p.clientCPUSeconds
            r.clientCPUPercent += p.clientCPUPercent
            for e in p.errors where r.errors.count < 20 { r.errors.append("worker \(k): \(e)") }
            for pair in p.latencyBuckets ?? [] where pair.count == 2 { _ = histogram.record(pair[0], count: pair[1]) }
            maxUs = max(maxUs, p.latency.maxUs)
            for pair in p.publishLatencyBuckets ?? [] where pair.count == 2 { _ = publishHistogram.record(pair[0], count: pair[1]) }
            publishMaxUs = max(publishMaxUs, p.publishLatency.maxUs)
        }
        if r.subscriberReads > 0 { r.eventsPerRead = Double(r.delivered) / Double(r.subscriberReads) }
        if histogram.totalCount > 0 {
            r.latency = LatencySummary(histogram)
            r.latency.maxUs = maxUs
        }
        if publishHistogram.totalCount > 0 {
            r.publishLatency = LatencySummary(publishHistogram)
            r.publishLatency.maxUs = publishMaxUs
        }
        let servers = parts.compactMap(\.report.server)
        if let pid = config.serverPID, !servers.isEmpty, servers.count == parts.count {
            let start = servers.map(\.start).min { $0.atNs < $1.atNs }!
            let end = servers.map(\.end).max { $0.atNs < $1.atNs }!
            r.server = ServerFigures(pid: pid, start: start, end: end,
                                     rssBefore: servers.map(\.rssBeforeBytes).min(),
                                     rssConnected: servers.map(\.rssConnectedBytes).max(),
                                     delivered: r.delivered, subscribersConnected: r.connected,
                                     perConnection: config.scenario != .replay, clientCPUSeconds: r.clientCPUSeconds,
                                     cores: Array(Set(servers.flatMap(\.cores))).sorted())
        }
        r.judge(extra: failures)
        return r
    }
}
