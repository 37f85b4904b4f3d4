// Broker: the routes of SPEC §4 on one event loop. It owns this loop's subscribers,
// grouped by channel, and fans each stored event out to them. Everything here runs on
// the loop's thread; `--threads N` runs N brokers.
import Logging
import StarlingAuth
import StarlingCore
import StarlingHTTP
import StarlingStore

public final class Broker: HTTPHandler, EventStoreDelegate {
    let loop: EventLoop
    let store: EventStore
    let config: BrokerConfig
    let auth: Authorizer
    /// Subscriptions whose token expires; closed at expiry (see docs/security.md).
    var expiring: [ObjectIdentifier: Subscription] = [:]
    let logger: Logger
    let cors: CORS
    let metrics = Metrics()
    var server: TCPServer?
    /// Local subscription legs per channel; a channel is watched in the store while it has any.
    var channels: [String: [ChannelLeg]] = [:]
    let heartbeat = SharedBytes(SSEEncoder.comment(""))
    private var ticks = 0

    public init(loop: EventLoop, store: EventStore, config: BrokerConfig, auth: Authorizer, logger: Logger) {
        self.loop = loop
        self.store = store
        self.config = config
        self.auth = auth
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
            case .clientModule:
                respond(request, connection, Response(status: 200, headers: [
                    ("Content-Type", "text/javascript; charset=utf-8"), ("Cache-Control", "no-cache")],
                    body: Array(ClientAssets.starlingJS.utf8)))
            case .demo:
                respond(request, connection, Response(status: 200, headers: [
                    ("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-cache")],
                    body: Array(ClientAssets.demoHTML.utf8)))
            case .channelInfo(let channel):
                _ = try authorize(request, .subscribe, [channel])
                channelInfo(channel, request, connection)
            case .channelEvents(let channel):
                if request.method == "POST" {
                    publish(channel, try authorize(request, .publish, [channel]), request, connection)
                } else {
                    let grant = try authorize(request, .subscribe, [channel])
                    try subscribe([channel], multiplexed: false, grant: grant, request, connection)
                }
            case .events:
                if request.method == "POST" {
                    publishMany(try authenticate(request), request, connection)
                } else {
                    let channels = try multiplexChannels(request)
                    let grant = try authorize(request, .subscribe, channels)
                    try subscribe(channels, multiplexed: true, grant: grant, request, connection)
                }
            }
        } catch let e as HTTPError {
            respond(request, connection, e.response)
        } catch let e as BrokerError {
            respond(request, connection, e.httpError.response)
        } catch {
            respond(request, connection, HTTPError(500, "internal", "\(error)").response)
        }
    }

    // MARK: authorization

    func token(_ request: Request) -> String? {
        Authorizer.token(authorization: request.header("authorization"), queryAccessToken: request.queryValue("access_token"),
                         cookieHeader: request.header("cookie"), cookieName: auth.config.cookieName)
    }

    /// 401/403 unless the request's token allows `action` on every channel.
    func authorize(_ request: Request, _ action: AuthAction, _ channels: [String]) throws -> Grant {
        try auth.authorize(token: token(request), action: action, channels: channels)
    }

    /// Who the caller is, for publishes whose channels are known only from the body.
    func authenticate(_ request: Request) throws -> Grant {
        let grant = try auth.authenticate(token: token(request))
        if grant.kind == .anonymous { throw BrokerError(.unauthorized, "unauthorized", "a token is required to publish") }
        return grant
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
        guard let legs = channels[channel] else { return }
        for event in events {
            for leg in legs { leg.live(event) }
        }
    }

    func add(_ leg: ChannelLeg) {
        if channels[leg.channel] == nil { store.watch(leg.channel) }
        leg.index = channels[leg.channel, default: []].count
        channels[leg.channel, default: []].append(leg)
        metrics.subscribers += 1
    }

    func remove(_ leg: ChannelLeg) {
        guard leg.index >= 0, var list = channels[leg.channel], leg.index < list.count, list[leg.index] === leg else { return }
        let last = list.removeLast()
        if last !== leg { list[leg.index] = last; last.index = leg.index }
        leg.index = -1
        metrics.subscribers -= 1
        if list.isEmpty {
            channels[leg.channel] = nil
            store.unwatch(leg.channel)
        } else {
            channels[leg.channel] = list
        }
    }

    // MARK: housekeeping

    private func tick(nowMs: UInt64) {
        ticks += 1
        guard ticks % 5 == 0 else { return }
        store.tick(nowMs: WallClock.nowMs())
        shedOverGlobalCap()
        closeExpired()
    }

    /// Ends streams whose token has expired: a `starling.expired` notice, then a clean
    /// end, so the client reconnects with a fresh token (or stops on the 401).
    private func closeExpired() {
        guard !expiring.isEmpty else { return }
        let now = Authorizer.nowSeconds()
        for (key, s) in expiring where s.grant.isExpired(nowSeconds: now) {
            expiring[key] = nil
            s.expire()
        }
    }

    /// Past the global cap, closes the subscribers with the largest queues first. Only
    /// connections whose kernel buffer is full can hold a queue across loop turns, and the
    /// loop keeps exactly those, so idle subscribers cost nothing here.
    private func shedOverGlobalCap() {
        var total = 0
        for c in loop.backloggedConnections { total += c.queuedBytes }
        guard total > config.maxQueuedBytes else { return }
        let largestFirst = loop.backloggedConnections.sorted { $0.queuedBytes > $1.queuedBytes }
        for c in largestFirst where total > config.maxQueuedBytes {
            total -= c.queuedBytes
            metrics.shedForGlobalCap += 1
            c.close()
        }
    }

    func renderMetrics() -> String {
        var queued = 0
        for c in loop.backloggedConnections { queued += c.queuedBytes }
        return metrics.render(connections: server?.connectionCount ?? 0, refused: server?.refusedCount ?? 0, queuedBytes: queued)
    }

    // MARK: drain

    /// SIGTERM: stop accepting, end every stream cleanly (clients reconnect elsewhere),
    /// let answers in flight go out, then call `done` (or at the deadline).
    public func drain(deadlineMs: UInt64, done: @escaping () -> Void) {
        guard let server else { return done() }
        server.stopAccepting()
        for c in server.openConnections { c.drain() }
        let start = loop.nowMs
        func check() {
            if server.connectionCount == 0 || loop.nowMs - start >= deadlineMs { return done() }
            loop.after(ms: 50, check)
        }
        check()
    }
}
