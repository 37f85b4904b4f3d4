// starling: the command line. Wiring only: parse flags, build the store and the broker
// on an event loop, run it, drain on SIGTERM/SIGINT.
import ArgumentParser
import Logging
import StarlingAuth
import StarlingServer
import StarlingStore
import StarlingHTTP
import StarlingLoop
#if canImport(Glibc)
import Glibc
#endif

@main
struct Starling: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "starling",
        abstract: "An SSE fan-out broker: publish over HTTP, subscribe with EventSource, resume by event ID.",
        subcommands: [Serve.self],
        defaultSubcommand: Serve.self)
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the broker.")

    @Option(help: "Address to listen on, HOST:PORT (port 0 picks a free one).")
    var listen = "127.0.0.1:8080"
    @Option(help: "Seconds without traffic before a subscriber gets a heartbeat comment.")
    var heartbeat: Double = 15
    @Option(help: "Bytes one subscriber may have queued before it is treated as a slow consumer.")
    var clientBuffer = 1 << 20
    @Option(help: "Bytes all subscribers together may have queued; past it the largest queues are shed.")
    var maxQueuedBytes = 1 << 30
    @Option(help: "Events retained per channel.")
    var retainEvents = 1000
    @Option(help: "Seconds an event is retained.")
    var retainSeconds = 3600
    @Option(help: "Largest event data in bytes.")
    var maxEventBytes = 256 * 1024
    @Option(help: "Largest non-streaming request body in bytes.")
    var maxBodyBytes = 4 * 1024 * 1024
    @Option(help: "Seconds a client has to send a request head.")
    var headTimeout: Double = 10
    @Option(help: "Seconds an idle keep-alive connection is kept.")
    var idleTimeout: Double = 60
    @Option(help: "Most client connections at once; more get 503.")
    var maxConnections = 19_000
    @Option(help: "Seconds SIGTERM waits for requests in progress before exiting.")
    var drainTimeout: Double = 10
    @Option(help: "Origin allowed to call from another origin (repeatable, or *).")
    var corsOrigin: [String] = []
    @Option(help: "Store events in Redis streams at redis://[:password@]host:port/db (default: the in-memory engine).")
    var redis: String?
    @Option(help: "HS256 secret for JWTs (repeatable).")
    var jwtSecret: [String] = []
    @Option(help: "RS256 or ES256 public key, PEM file (repeatable).")
    var jwtPublicKey: [String] = []
    @Option(help: "Channel or prefix* pattern anonymous clients may subscribe to (repeatable).")
    var publicSubscribe: [String] = []
    @Option(help: "Channel or prefix* pattern whose subscribers start at the earliest retained event when they give no resume point (repeatable; for per-generation channels).")
    var subscribeFromStart: [String] = []
    @Option(help: "Cookie that may carry the JWT (after Authorization: Bearer and ?access_token=).")
    var jwtCookie = "starling_token"
    @Option(help: "Event loops, each on its own thread with its own listener on the port (default: the cores this process may run on).")
    var threads: Int?
    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel = "info"

    func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "starling")
        signal(SIGPIPE, SIG_IGN)

        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
            throw ValidationError("--listen takes HOST:PORT")
        }
        let host = String(listen[..<colon]).trimmingCharacters(in: ["[", "]"])

        var config = BrokerConfig()
        config.heartbeatMs = UInt64(max(0.1, heartbeat) * 1000)
        config.clientBufferBytes = clientBuffer
        config.maxQueuedBytes = maxQueuedBytes
        config.maxEventBytes = maxEventBytes
        config.corsOrigins = corsOrigin
        config.http.maxBodyBytes = maxBodyBytes
        config.http.headTimeoutMs = UInt64(max(0.1, headTimeout) * 1000)
        config.http.idleTimeoutMs = UInt64(max(0.1, idleTimeout) * 1000)
        config.http.maxConnections = maxConnections
        guard let fromStart = ChannelPatterns(subscribeFromStart) else {
            throw ValidationError("--subscribe-from-start takes a channel name or a prefix followed by *")
        }
        config.subscribeFromStart = fromStart

        let loopCount = threads ?? LoopGroup.availableCores
        guard (1...256).contains(loopCount) else { throw ValidationError("--threads takes 1 to 256") }
        let group = LoopGroup(count: loopCount)
        let stores: [EventStore]
        if let redis {
            guard let url = RedisURL(redis) else { throw ValidationError("--redis takes redis://host:port/db") }
            // Each loop keeps its own two Redis connections, as separate nodes would.
            let redisStores = group.loops.map {
                RedisStore(loop: $0, url: url, retainEvents: retainEvents, retainSeconds: retainSeconds, logger: logger)
            }
            for r in redisStores { r.start() }
            // Listen either way (/readyz says 503 until Redis answers), but give it a moment.
            for r in redisStores where !r.waitUntilReady(timeoutMs: 5_000) {
                logger.warning("redis \(url) is not reachable yet; retrying")
                break
            }
            stores = redisStores
        } else {
            stores = PartitionedMemoryStore.group(loops: group.loops, retainEvents: retainEvents, retainSeconds: retainSeconds)
        }
        let authConfig = AuthConfig(hmacSecrets: jwtSecret, publicKeyPEMs: try jwtPublicKey.map(AuthConfig.readKeyFile),
                                    publicSubscribe: publicSubscribe, cookieName: jwtCookie)
        // One authorizer per loop: its token cache is then the loop's own, with no lock between loops.
        let authorizers = try group.loops.map { _ in try Authorizer(config: authConfig) }
        let brokers = group.loops.indices.map {
            Broker(loop: group.loops[$0], store: stores[$0], config: config, auth: authorizers[$0], logger: logger)
        }
        if authorizers[0].isOpen {
            logger.warning("""
                *** OPEN MODE: no --jwt-secret or --jwt-public-key given. ANYONE who can reach this port \
                can publish to and subscribe to EVERY channel. Configure keys before exposing it. ***
                """)
        }
        _ = BrokerGroup(brokers: brokers, budget: ConnectionBudget(limit: maxConnections))
        var bound = try brokers[0].listen(host: host, port: port, sharedPort: loopCount > 1)
        for b in brokers.dropFirst() { bound = try b.listen(host: host, port: bound, sharedPort: true) }
        // Tests and scripts read this line to learn the port.
        print("starling listening on http://\(host.contains(":") ? "[\(host)]" : host):\(bound) (engine: \(redis == nil ? "memory" : "redis"), threads: \(loopCount))")
        fflush(nil)  // all streams: the test harness reads this line through a pipe

        // Signals arrive on loop 0 (this thread); the drain reaches every loop from there.
        var draining = false
        let drain = {
            guard !draining else { return }
            draining = true
            logger.notice("draining: closing subscribers, finishing answers in flight")
            brokers[0].drainAll(deadlineMs: UInt64(max(0, drainTimeout) * 1000)) {
                logger.notice("drained, exiting")
                Glibc.exit(0)
            }
        }
        group.loops[0].onSignal(SIGTERM, drain)
        group.loops[0].onSignal(SIGINT, drain)
        group.run()
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: Set<Character>) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
