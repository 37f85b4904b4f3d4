// Broker: the routes of SPEC §4 on one event loop. It owns this loop's subscribers,
// grouped by channel, and fans each stored event out to them. Everything here runs on
// the loop's thread; `--threads N` runs N brokers, one per loop, in one BrokerGroup.
import Logging
import StarlingAuth
import StarlingCore
import StarlingHTTP
import StarlingLoop
import StarlingStore

public final class Broker: HTTPHandler, EventStoreDelegate {
    let loop: EventLoop
    let http: HTTPLoop
    let store: EventStore
    let config: BrokerConfig
    let auth: Authorizer
    /// Subscriptions whose token expires; closed at expiry (see docs/security.md).
    var expiring: [ObjectIdentifier: Subscription] = [:]
    let logger: Logger
    let cors: CORS
    var metrics = Metrics()
    var server: TCPServer?
    /// The process's brokers (this one included); set by `BrokerGroup.init` before the
    /// loops run, and never nil after.
    var group: BrokerGroup!
    /// Local subscription legs per channel; a channel is watched in the store while it has
    /// any, or while a streaming publish to it is open here (`ingests`). The store keeps
    /// each list as the channel's listener and hands it back with the channel's appends.
    var channels: [String: ChannelLegs] = [:]
    /// Open streaming publishes per channel: they learn of a Stop or an abandonment through
    /// the same fan-out as subscribers (Lifecycle.swift).
    var ingests: [String: [IngestStream]] = [:]
    /// Open streaming publishes that hold their channels' leases.
    var leaseHolders: [ObjectIdentifier: IngestStream] = [:]
    let heartbeat = SharedBytes(SSEEncoder.comment(""))
    private var ticks = 0
    /// The event last asked about in `isMergeable`, and the answer: a fan-out asks once
    /// per subscriber, the set is looked up once per event.
    private var mergeChecked: (event: StoredEvent, mergeable: Bool)?
    /// The fast lane's channel names, made once each (ChannelNames.swift).
    var laneChannelNames = ChannelNames()
    /// The fast lane's bearer tokens with their grants, each for the second it was checked in
    /// (LaneTokens.swift).
    var laneTokens = LaneTokens()
    /// With a store that paces its calls (`--redis-pace`): a client that comes back within
    /// this many ms of its previous answer, and never pipelines, waits on us (`expedite`). The
    /// pace, at least 2 (the loop's clock counts whole milliseconds); 0: no pace.
    let expediteWithinMs: UInt64

    public init(loop: EventLoop, store: EventStore, config: BrokerConfig, auth: Authorizer, logger: Logger) {
        self.loop = loop
        self.http = HTTPLoop(loop: loop)
        self.store = store
        self.config = config
        self.auth = auth
        self.logger = logger
        self.cors = CORS(origins: config.corsOrigins)
        expediteWithinMs = store.paceMs > 0 ? max(2, store.paceMs) : 0
        store.delegate = self
        http.onTick { [unowned self] now in self.tick(nowMs: now) }  // not weak: see Connection.handler
        // After the HTTP side's flush (registered first, in HTTPLoop.init): the events fanned
        // out this turn are written now.
        loop.onEveryTurn { [unowned self] in
            guard !self.metrics.awaitingWrite.isEmpty else { return }
            self.metrics.writesFlushed(nowWallNs: WallClock.nowNs())
        }
    }

    /// Listens on `host:port`; returns the bound port. With several loops each listens on
    /// the same port (`sharedPort`) and the kernel spreads connections over them.
    public func listen(host: String, port: Int, sharedPort: Bool = false) throws -> Int {
        precondition(group != nil, "a broker joins its BrokerGroup before it listens")
        let server = TCPServer(loop: http, limits: config.http, budget: group.budget, handler: self, logger: logger)
        self.server = server
        return try server.listen(host: host, port: port, sharedPort: sharedPort)
    }

    // MARK: requests

    /// After a publish went to a pacing store: a client that waits on this answer alone is
    /// not held for the pace (EventStore.expedite).
    @inline(__always)
    func expediteIfWaiting(_ connection: Connection) {
        if expediteWithinMs > 0, connection.waitsOnAnswers(withinMs: expediteWithinMs) { store.expedite() }
    }

    public func handle(_ request: Request, on connection: Connection) {
        do {
            let route = try Route.match(request)
            if request.method == "OPTIONS", route.allowedMethods.contains("OPTIONS") {
                let preflight = cors.preflight(for: request, methods: route.allowedMethods)
                answered(request, status: preflight.status, bytes: preflight.body.count)
                return connection.respond(to: request, preflight)
            }
            try route.check(method: request.method)
            switch route {
            case .healthz:
                respond(request, connection, .json(200, "{\"status\":\"ok\"}"))
            case .readyz:
                // Ready when every loop's store is: each loop has its own Redis connections,
                // and they come back one by one after an outage (a probe that asked only the
                // loop it landed on said ready while another loop still answered 503).
                group.collect(from: self, { broker, reply in reply(broker.store.isReady) }) { [self] ready in
                    respond(request, connection, ready.allSatisfy { $0 } ? .json(200, "{\"status\":\"ready\"}")
                        : HTTPError(503, "store_unavailable", "the store cannot be reached", headers: [("Retry-After", "1")]).response)
                }
            case .metrics:
                group.collect(from: self, { broker, reply in reply(broker.metricsNow()) }) { [self] loops in
                    respond(request, connection, Response(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4")],
                                                          body: Array(Metrics.render(loops: loops).utf8)))
                }
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
            case .channelCancel(let channel):
                cancel(channel, try authorize(request, .cancel, [channel]), request, connection)
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
            respond(request, connection, e)
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
    func authorize(_ request: Request, _ action: AuthAction, _ channels: @autoclosure () -> [String]) throws -> Grant {
        // Open mode allows everything: look at no token, time or channel list (every
        // publish passes here, and the list is then never made).
        if auth.isOpen { return Authorizer.openGrant }
        return try auth.authorize(token: token(request), action: action, channels: channels())
    }

    /// Who the caller is, for publishes whose channels are known only from the body.
    func authenticate(_ request: Request) throws -> Grant {
        let grant = try auth.authenticate(token: token(request))
        if grant.kind == .anonymous { throw BrokerError(.unauthorized, "unauthorized", "a token is required to publish") }
        return grant
    }

    /// Answers with the CORS headers this request earns.
    func respond(_ request: Request, _ connection: Connection, _ response: Response, error: BrokerError? = nil) {
        answered(request, status: response.status, bytes: response.body.count, error: error)
        var r = response
        // Appending even nothing would copy a shared header array: only when there is some.
        let corsHeaders = cors.headers(for: request)
        if !corsHeaders.isEmpty { r.headers += corsHeaders }
        connection.respond(to: request, r)
    }

    func respond(_ request: Request, _ connection: Connection, _ error: BrokerError) {
        respond(request, connection, error.httpError.response, error: error)
    }

    private func channelInfo(_ channel: String, _ request: Request, _ connection: Connection) {
        store.info(channel) { [self] result in
            switch result {
            case .failure(let e): respond(request, connection, e)
            case .success(let info):
                // Subscribers on every loop, counted by each loop itself.
                group.collect(from: self, { broker, reply in reply(broker.channels[channel]?.list.count ?? 0) }) { [self] counts in
                    let lastID = info.lastID.map { "\"\($0)\"" } ?? "null"
                    respond(request, connection, .json(200,
                        "{\"last_id\":\(lastID),\"length\":\(info.length),\"final\":\(info.final),\"state\":\"\(info.state.rawValue)\","
                        + "\"subscribers\":\(counts.reduce(0, +))}"))
                }
            }
        }
    }

    // MARK: fan-out

    public func store(didAppend events: [StoredEvent], to channel: String, listener: AnyObject?) {
        if let last = events.last, last.final, let streams = ingests[channel] { for s in streams { s.channelEnded(by: last) } }
        guard let legs = legs(of: channel, listener) else { return }
        for event in events { fanOut(event, legs) }
    }

    public func store(didAppendOne event: StoredEvent, to channel: String, listener: AnyObject?) {
        if event.final, let streams = ingests[channel] { for s in streams { s.channelEnded(by: event) } }
        guard let legs = legs(of: channel, listener) else { return }
        fanOut(event, legs)
    }

    /// The channel's subscribers here. Only this broker sets listeners, and only to its
    /// ChannelLegs: no checked cast.
    @inline(__always) private func legs(of channel: String, _ listener: AnyObject?) -> ChannelLegs? {
        listener.map { unsafeDowncast($0, to: ChannelLegs.self) } ?? channels[channel]
    }

    @inline(__always) private func fanOut(_ event: StoredEvent, _ legs: ChannelLegs) {
        for leg in legs.list { leg.live(event) }
        metrics.awaitingWrite.append(event.storedAtMs)
    }

    /// May `event` be merged for a subscriber (`--merge-events`)? Free when none are set.
    func isMergeable(_ event: StoredEvent) -> Bool {
        if config.mergeEvents.isEmpty { return false }
        if let checked = mergeChecked, checked.event === event { return checked.mergeable }
        let mergeable = TokenMerge.isMergeable(event, names: config.mergeEvents)
        mergeChecked = (event, mergeable)
        return mergeable
    }

    func add(_ leg: ChannelLeg) {
        let legs: ChannelLegs
        if let known = channels[leg.channel] {
            legs = known
        } else {
            if ingests[leg.channel] == nil { store.watch(leg.channel) }
            legs = ChannelLegs()
            channels[leg.channel] = legs
            store.setListener(legs, for: leg.channel)
        }
        leg.index = legs.list.count
        legs.list.append(leg)
        metrics.subscribers += 1
    }

    func remove(_ leg: ChannelLeg) {
        guard leg.index >= 0, let legs = channels[leg.channel], leg.index < legs.list.count, legs.list[leg.index] === leg else { return }
        let last = legs.list.removeLast()
        if last !== leg { legs.list[leg.index] = last; last.index = leg.index }
        leg.index = -1
        metrics.subscribers -= 1
        if legs.list.isEmpty {
            channels[leg.channel] = nil
            store.setListener(nil, for: leg.channel)
            if ingests[leg.channel] == nil { store.unwatch(leg.channel) }
        }
    }

    // MARK: housekeeping

    private func tick(nowMs: UInt64) {
        holdLeases(nowMs: nowMs)
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

    /// Past the global cap (all loops together), merges queued token runs, then closes
    /// subscribers with the largest queues first. Each loop frees its share of the excess,
    /// in proportion to what it holds, from its own largest queues (what merging freed
    /// counts toward it): no loop touches another's connections. Only connections
    /// whose kernel buffer is full can hold a queue across loop turns, and the loop keeps
    /// exactly those, so idle subscribers cost nothing here.
    private func shedOverGlobalCap() {
        let mine = queuedBytes
        let total = group.reportQueued(loop: loop.index, bytes: mine)
        guard total > config.maxQueuedBytes, mine > 0 else { return }
        let excess = total - config.maxQueuedBytes
        var share = Int((Double(excess) * Double(mine) / Double(total)).rounded(.up))
        var left = mine
        if !config.mergeEvents.isEmpty {  // token runs merge first; what that frees counts toward the share
            for c in http.backloggedConnections { metrics.mergedEvents += c.mergeQueuedTokens() }
            left = queuedBytes
            share -= mine - left
        }
        let largestFirst = http.backloggedConnections.sorted { $0.queuedBytes > $1.queuedBytes }
        for c in largestFirst where share > 0 {
            share -= c.queuedBytes
            left -= c.queuedBytes
            noteShed(c, totalQueued: total)
            c.close()
        }
        _ = group.reportQueued(loop: loop.index, bytes: left)
    }

    private var queuedBytes: Int {
        var queued = 0
        for c in http.backloggedConnections { queued += c.queuedBytes }
        return queued
    }

    /// This loop's figures as of now, for a process-wide `/metrics`.
    func metricsNow() -> Metrics {
        var m = metrics
        m.connections = server?.connectionCount ?? 0
        m.refusedConnections = server?.refusedCount ?? 0
        m.queuedBytes = queuedBytes
        m.channels = store.channelCount
        m.storeReady = store.isReady ? 1 : 0
        let stats = store.stats
        m.redisReconnects = stats.reconnects
        m.redisCommandErrors = stats.commandErrors
        m.redisAskRedirects = stats.askRedirects
        m.redisMovedRedirects = stats.movedRedirects
        return m
    }

    // MARK: drain

    /// SIGTERM, on this broker's loop: drains every loop of the process and calls `done`
    /// here once all have finished (or reached the deadline).
    public func drainAll(deadlineMs: UInt64, done: @escaping () -> Void) {
        group.collect(from: self, { broker, reply in broker.drain(deadlineMs: deadlineMs) { reply(true) } }) { _ in done() }
    }

    /// Stop accepting, end every stream cleanly (clients reconnect elsewhere), let answers
    /// in flight go out, then call `done` (or at the deadline).
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
