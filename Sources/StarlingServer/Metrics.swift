// Metrics: per-loop counters (plain integers: one loop, one thread, no atomics on the
// hot path), summed over every loop at scrape time and rendered in the Prometheus text
// format for `/metrics`.

struct Metrics: Sendable {
    var eventsPublished = 0
    var publishRequests = 0
    var eventsDelivered = 0
    var eventsReplayed = 0
    var conflatedDrops = 0
    var slowConsumerDisconnects = 0
    var shedForGlobalCap = 0
    var gapsReported = 0
    var cancels = 0
    var streamsStopped = 0
    var subscribers = 0
    /// Figures read off the loop at scrape time.
    var connections = 0
    var refusedConnections = 0
    var queuedBytes = 0
    /// Channels the memory engine holds (its partition on this loop); nil with Redis.
    var channels: Int?

    /// The sum of two loops' figures.
    static func + (a: Metrics, b: Metrics) -> Metrics {
        var m = a
        m.eventsPublished += b.eventsPublished
        m.publishRequests += b.publishRequests
        m.eventsDelivered += b.eventsDelivered
        m.eventsReplayed += b.eventsReplayed
        m.conflatedDrops += b.conflatedDrops
        m.slowConsumerDisconnects += b.slowConsumerDisconnects
        m.shedForGlobalCap += b.shedForGlobalCap
        m.gapsReported += b.gapsReported
        m.cancels += b.cancels
        m.streamsStopped += b.streamsStopped
        m.subscribers += b.subscribers
        m.connections += b.connections
        m.refusedConnections += b.refusedConnections
        m.queuedBytes += b.queuedBytes
        if let c = b.channels { m.channels = (m.channels ?? 0) + c }
        return m
    }

    /// The whole process, from each loop's figures in loop order.
    static func render(loops: [Metrics]) -> String {
        var out = loops.reduce(Metrics(), +).render()
        out += "# HELP starling_loop_connections Open client connections per event loop.\n"
        out += "# TYPE starling_loop_connections gauge\n"
        for (k, m) in loops.enumerated() { out += "starling_loop_connections{loop=\"\(k)\"} \(m.connections)\n" }
        return out
    }

    func render() -> String {
        var out = ""
        func counter(_ name: String, _ help: String, _ value: Int, type: String = "counter") {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n"
        }
        counter("starling_events_published_total", "Events stored by publishes.", eventsPublished)
        counter("starling_publish_requests_total", "Successful publish requests.", publishRequests)
        counter("starling_events_delivered_total", "Live events queued to subscribers.", eventsDelivered)
        counter("starling_events_replayed_total", "History events queued to resuming subscribers.", eventsReplayed)
        counter("starling_conflated_drops_total", "Superseded snapshots dropped from slow queues.", conflatedDrops)
        counter("starling_slow_consumer_disconnects_total", "Subscribers closed because their queue overflowed.", slowConsumerDisconnects)
        counter("starling_shed_global_cap_total", "Subscribers closed to keep all queues under the global cap.", shedForGlobalCap)
        counter("starling_gaps_reported_total", "starling.gap notices sent.", gapsReported)
        counter("starling_cancels_total", "Channels ended by Stop (POST /v1/channels/{ch}/cancel).", cancels)
        counter("starling_publish_streams_stopped_total", "Streaming publishes answered 409 because their channel was cancelled or abandoned.", streamsStopped)
        counter("starling_refused_connections_total", "Connections refused at the connection limit.", refusedConnections)
        counter("starling_subscribers", "Open SSE subscriptions.", subscribers, type: "gauge")
        counter("starling_connections", "Open client connections.", connections, type: "gauge")
        counter("starling_queued_bytes", "Bytes queued to subscribers, not yet written.", queuedBytes, type: "gauge")
        if let channels {
            counter("starling_channels", "Channels held by the memory engine (forgotten once expired and unwatched).", channels, type: "gauge")
        }
        return out
    }
}
