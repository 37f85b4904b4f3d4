// Metrics: per-loop counters (plain integers: one loop, one thread, no atomics on the
// hot path) rendered in the Prometheus text format for `/metrics`.

final class Metrics {
    var eventsPublished = 0
    var publishRequests = 0
    var eventsDelivered = 0
    var eventsReplayed = 0
    var conflatedDrops = 0
    var slowConsumerDisconnects = 0
    var shedForGlobalCap = 0
    var gapsReported = 0
    var subscribers = 0

    func render(connections: Int, refused: Int, queuedBytes: Int) -> String {
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
        counter("starling_refused_connections_total", "Connections refused at the connection limit.", refused)
        counter("starling_subscribers", "Open SSE subscriptions.", subscribers, type: "gauge")
        counter("starling_connections", "Open client connections.", connections, type: "gauge")
        counter("starling_queued_bytes", "Bytes queued to subscribers, not yet written.", queuedBytes, type: "gauge")
        return out
    }
}
