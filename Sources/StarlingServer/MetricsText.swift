// MetricsText: the process's summed Metrics (and its own figures from /proc) in the
// Prometheus text exposition format 0.0.4, checked by `promtool check metrics` in
// ops/scripts/check-ops.sh and by the test suite.

enum MetricsText {
    static func render(_ s: Metrics, process: ProcessStats?) -> String {
        var out = ""
        func head(_ name: String, _ help: String, _ type: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        func one(_ name: String, _ help: String, _ value: Int, type: String = "counter") {
            head(name, help, type)
            out += "\(name) \(value)\n"
        }
        func number(_ v: Double) -> String {
            v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : "\(v)"
        }
        func histogram(_ name: String, _ h: Histogram, labels: String = "") {
            let sep = labels.isEmpty ? "" : ","
            var cumulative = 0
            for (k, bound) in h.bounds.enumerated() {
                cumulative += h.counts[k]
                out += "\(name)_bucket{\(labels)\(sep)le=\"\(bound)\"} \(cumulative)\n"
            }
            out += "\(name)_bucket{\(labels)\(sep)le=\"+Inf\"} \(h.count)\n"
            let braces = labels.isEmpty ? "" : "{\(labels)}"
            out += "\(name)_sum\(braces) \(h.sum)\n\(name)_count\(braces) \(h.count)\n"
        }

        one("starling_events_published_total", "Events stored by publishes.", s.eventsPublished)
        one("starling_publish_requests_total", "Successful publish requests.", s.publishRequests)
        one("starling_events_delivered_total", "Live events queued to subscribers.", s.eventsDelivered)
        one("starling_events_replayed_total", "History events queued to resuming subscribers.", s.eventsReplayed)
        one("starling_conflated_drops_total", "Superseded snapshots dropped from slow queues.", s.conflatedDrops)
        one("starling_merged_events_total", "Token events merged into another (slow queues and ?merge=1 replays).", s.mergedEvents)
        one("starling_slow_consumer_disconnects_total", "Subscribers closed because their queue overflowed.", s.slowConsumerDisconnects)
        one("starling_shed_global_cap_total", "Subscribers closed to keep all queues under the global cap.", s.shedForGlobalCap)
        one("starling_gaps_reported_total", "starling.gap notices sent.", s.gapsReported)
        one("starling_cancels_total", "Channels ended by Stop (POST /v1/channels/{ch}/cancel).", s.cancels)
        one("starling_publish_streams_stopped_total", "Streaming publishes answered 409 because their channel was cancelled or abandoned.", s.streamsStopped)
        one("starling_refused_connections_total", "Connections refused at the connection limit.", s.refusedConnections)
        one("starling_subscribers", "Open SSE subscriptions.", s.subscribers, type: "gauge")
        one("starling_connections", "Open client connections.", s.connections, type: "gauge")
        one("starling_queued_bytes", "Bytes queued to subscribers, not yet written.", s.queuedBytes, type: "gauge")
        if let channels = s.channels {
            one("starling_channels", "Channels held by the memory engine (forgotten once expired and unwatched).", channels, type: "gauge")
        }

        head("starling_responses_total", "Answers by route and status class (an SSE stream counts when it starts).", "counter")
        for (r, route) in MetricRoute.allCases.enumerated() {
            for k in 0..<5 where s.responses[r][k] > 0 || (route == .publish && k == 1) {
                out += "starling_responses_total{route=\"\(route.rawValue)\",status=\"\(k + 1)xx\"} \(s.responses[r][k])\n"
            }
        }
        head("starling_auth_refusals_total", "Requests refused by authorization: 401 no valid token, 403 outside the token's claims.", "counter")
        out += "starling_auth_refusals_total{status=\"401\"} \(s.authRefusals401)\n"
        out += "starling_auth_refusals_total{status=\"403\"} \(s.authRefusals403)\n"

        head("starling_request_duration_seconds", "From a request's head read to its answer queued (an SSE stream: to its start).", "histogram")
        for (r, route) in MetricRoute.allCases.enumerated() where s.requestDuration[r].count > 0 || route == .publish {
            histogram("starling_request_duration_seconds", s.requestDuration[r], labels: "route=\"\(route.rawValue)\"")
        }
        head("starling_publish_to_write_seconds",
             "From an event's store time (its ID's millisecond) to its write to this node's subscribers, once per event and loop.", "histogram")
        histogram("starling_publish_to_write_seconds", s.publishToWrite)
        head("starling_stream_duration_seconds", "How long SSE streams stayed open, observed when they end.", "histogram")
        histogram("starling_stream_duration_seconds", s.streamDuration)

        one("starling_store_ready", "1 while the store answers (Redis connected), else 0.", s.storeReady, type: "gauge")
        one("starling_redis_reconnects_total", "Redis connections re-established after a loss.", s.redisReconnects)
        one("starling_redis_command_errors_total", "Redis commands answered with an error or lost with their connection.", s.redisCommandErrors)
        head("starling_redis_redirects_total", "Redis Cluster redirects followed: ask (a slot being migrated), moved (a slot that moved).", "counter")
        out += "starling_redis_redirects_total{kind=\"ask\"} \(s.redisAskRedirects)\n"
        out += "starling_redis_redirects_total{kind=\"moved\"} \(s.redisMovedRedirects)\n"
        head("starling_build_info", "The running version; always 1.", "gauge")
        out += "starling_build_info{version=\"\(StarlingVersion.current)\"} 1\n"

        if let p = process {
            head("process_cpu_seconds_total", "User and system CPU time spent, in seconds.", "counter")
            out += "process_cpu_seconds_total \(p.cpuSeconds)\n"
            one("process_resident_memory_bytes", "Resident memory size in bytes.", p.residentBytes, type: "gauge")
            one("process_virtual_memory_bytes", "Virtual memory size in bytes.", p.virtualBytes, type: "gauge")
            one("process_open_fds", "Open file descriptors.", p.openFDs, type: "gauge")
            one("process_max_fds", "The limit of open file descriptors.", p.maxFDs, type: "gauge")
            head("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.", "gauge")
            out += "process_start_time_seconds \(number(p.startTimeSeconds))\n"
        }
        return out
    }
}
