// Broker: the routes of SPEC §4 on one event loop. It owns this loop's subscribers,
// grouped by channel, and fans each stored event out to them. Everything here runs on
// the loop's thread; `--threads N` runs N brokers.
import Logging
import StarlingCore
import StarlingHTTP
import StarlingStore

public final class Broker: HTTPHandler, EventStoreDelegate {
    let loop: EventLoop
    let store: EventStore
    let config: BrokerConfig
    let logger: Logger
    let cors: CORS
    let metrics = Metrics()
    var server: TCPServer?
    /// Local subscribers per channel; a channel is watched in the store while it has any.
    var channels: [String: [Subscriber]] = [:]
    let heartbeat = SharedBytes(SSEEncoder.comment(""))
    private var ticks = 0

    public init(loop: EventLoop, store: EventStore, config: BrokerConfig, logger: Logger) {
        self.loop = loop
        self.store = store
        self.config = config
        self.logger = logger
        self.cors = CORS(origins: config.corsOrigins)
        store.delegate = self
        loop.onTick { [weak self] now in self?.tick(nowMs: now) }
    }

    /// Listens on `host:port`; returns the bound port.
    public func listen(host: String, port: Int) throws -> Int {
        let server = TCPServer(loop: loop, limits: config.http, handler: self, logger: logger)
        self.server = server
        return try server.listen(host: host, port: port)
    }

    // MARK: requests

    public func handle(_ request: Request, on connection: Connection) {
        do {
            let route = try Route.match(request.path)
            if request.method == "OPTIONS", route.allowedMethods.contains("OPTIONS") {
                return connection.respond(to: request, cors.preflight(for: request, methods: route.allowedMethods))
            }
            try route.check(method: request.method)
            switch route {
            case .healthz:
                respond(request, connection, .json(200, "{\"status\":\"ok\"}"))
            case .readyz:
                respond(request, connection, store.isReady ? .json(200, "{\"status\":\"ready\"}")
                    : HTTPError(503, "store_unavailable", "the store cannot be reached", headers: [("Retry-After", "1")]).response)
            case .metrics:
                respond(request, connection, Response(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4")],
                                                      body: Array(renderMetrics().utf8)))
            case .channelInfo(let channel):
                channelInfo(channel, request, connection)
            case .channelEvents(let channel):
                if request.method == "POST" { publish(channel, request, connection) } else { subscribe(channel, request, connection) }
            }
        } catch let e as HTTPError {
            respond(request, connection, e.response)
        } catch let e as BrokerError {
            respond(request, connection, e.httpError.response)
        } catch {
            respond(request, connection, HTTPError(500, "internal", "\(error)").response)
        }
    }

    /// Answers with the CORS headers this request earns.
    func respond(_ request: Request, _ connection: Connection, _ response: Response) {
        var r = response
        r.headers += cors.headers(for: request)
        connection.respond(to: request, r)
    }

    func respond(_ request: Request, _ connection: Connection, _ error: BrokerError) {
        respond(request, connection, error.httpError.response)
    }

    private func channelInfo(_ channel: String, _ request: Request, _ connection: Connection) {
        store.info(channel) { [self] result in
            switch result {
            case .failure(let e): respond(request, connection, e)
            case .success(let info):
                let lastID = info.lastID.map { "\"\($0)\"" } ?? "null"
                respond(request, connection, .json(200,
                    "{\"last_id\":\(lastID),\"length\":\(info.length),\"final\":\(info.final),\"subscribers\":\(channels[channel]?.count ?? 0)}"))
            }
        }
    }

    // MARK: fan-out

    public func store(didAppend events: [StoredEvent], to channel: String) {
        guard let subscribers = channels[channel] else { return }
        for event in events {
            for s in subscribers { s.live(event) }
        }
    }

    func add(_ s: Subscriber) {
        if channels[s.channel] == nil { store.watch(s.channel) }
        s.index = channels[s.channel, default: []].count
        channels[s.channel, default: []].append(s)
        metrics.subscribers += 1
    }

    func remove(_ s: Subscriber) {
        guard s.index >= 0, var list = channels[s.channel], s.index < list.count, list[s.index] === s else { return }
        let last = list.removeLast()
        if last !== s { list[s.index] = last; last.index = s.index }
        s.index = -1
        metrics.subscribers -= 1
        if list.isEmpty {
            channels[s.channel] = nil
            store.unwatch(s.channel)
        } else {
            channels[s.channel] = list
        }
    }

    // MARK: housekeeping

    private func tick(nowMs: UInt64) {
        ticks += 1
        guard ticks % 5 == 0 else { return }
        store.tick(nowMs: WallClock.nowMs())
        shedOverGlobalCap()
    }

    /// Past the global cap, closes the subscribers with the largest queues first.
    private func shedOverGlobalCap() {
        var total = 0
        var backlogged: [Subscriber] = []
        for list in channels.values {
            for s in list where s.connection.queuedBytes > 0 {
                total += s.connection.queuedBytes
                backlogged.append(s)
            }
        }
        guard total > config.maxQueuedBytes else { return }
        backlogged.sort { $0.connection.queuedBytes > $1.connection.queuedBytes }
        for s in backlogged where total > config.maxQueuedBytes {
            total -= s.connection.queuedBytes
            metrics.shedForGlobalCap += 1
            s.connection.close()
        }
    }

    func renderMetrics() -> String {
        var queued = 0
        for list in channels.values { for s in list { queued += s.connection.queuedBytes } }
        return metrics.render(connections: server?.connectionCount ?? 0, refused: server?.refusedCount ?? 0, queuedBytes: queued)
    }

    // MARK: drain

    /// SIGTERM: stop accepting, end every stream cleanly (clients reconnect elsewhere),
    /// let answers in flight go out, then call `done` (or at the deadline).
    public func drain(deadlineMs: UInt64, done: @escaping () -> Void) {
        guard let server else { return done() }
        server.stopAccepting()
        for c in server.openConnections { c.finish() }
        let start = loop.nowMs
        func check() {
            if server.connectionCount == 0 || loop.nowMs - start >= deadlineMs { return done() }
            loop.after(ms: 50, check)
        }
        check()
    }
}
