// Runtime: ServeSettings turned into what the broker, the authorizer and the Redis engine
// take. Kept apart from `run()` so `starling check` builds exactly what `serve` would.
import Logging
import StarlingAuth
import StarlingConfig
import StarlingServer
import StarlingStore

struct Runtime {
    let settings: ServeSettings
    var broker = BrokerConfig()
    let auth: AuthConfig
    let redis: RedisURL?
    /// `redis_cluster` seeds, each with the password put in (empty: not a cluster).
    let redisCluster: [RedisURL]

    init(_ s: ServeSettings) throws(ConfigError) {
        settings = s
        broker.heartbeatMs = UInt64(s.heartbeatSeconds * 1000)
        broker.clientBufferBytes = s.clientBufferBytes
        broker.maxQueuedBytes = s.maxQueuedBytes
        broker.maxEventBytes = s.maxEventBytes
        broker.corsOrigins = s.corsOrigins
        broker.http.maxBodyBytes = s.maxBodyBytes
        broker.http.headTimeoutMs = UInt64(s.headTimeoutSeconds * 1000)
        broker.http.idleTimeoutMs = UInt64(s.idleTimeoutSeconds * 1000)
        broker.http.maxConnections = s.maxConnections
        guard let fromStart = ChannelPatterns(s.subscribeFromStart) else {
            throw ConfigError(key: "subscribe_from_start", "takes channel names or a prefix followed by *")
        }
        broker.subscribeFromStart = fromStart
        for name in s.mergeEvents {
            if let why = BrokerConfig.mergeEventProblem(name) { throw ConfigError(key: "merge_events", why) }
        }
        broker.mergeEvents = Set(s.mergeEvents)
        auth = AuthConfig(hmacSecrets: s.jwtSecrets, publicKeyPEMs: s.jwtPublicKeyPEMs,
                          publicSubscribe: s.publicSubscribe, cookieName: s.jwtCookie)
        redis = try s.redisURL.map { text throws(ConfigError) in try Self.redisURL(text, password: s.redisPassword) }
        var seeds: [RedisURL] = []
        for text in s.redisClusterURLs {
            let url = try Self.redisURL(text, password: s.redisPassword, key: "redis_cluster")
            guard url.db == 0 else { throw ConfigError(key: "redis_cluster", "a cluster has only database 0; \(url) names \(url.db)") }
            seeds.append(url)
        }
        redisCluster = seeds
    }

    /// The engine's URL with the password from `redis_password(_file)` put in; `rediss://`
    /// refused by name (Debian 12's hiredis 0.14 has no TLS).
    static func redisURL(_ text: String, password: String?, key: String = "redis") throws(ConfigError) -> RedisURL {
        guard var url = RedisURL(text) else {
            throw ConfigError(key: key, "'\(ServeSettings.maskedURL(text))' is not redis://[user[:password]@]host[:port][/db]")
        }
        if url.tls {
            throw ConfigError(key: key, """
                rediss:// (TLS) is not supported: this build uses Debian's hiredis 0.14, which has no TLS. \
                Reach Redis over a private network, or through a local TLS tunnel (stunnel, spiped) at redis://127.0.0.1:PORT
                """)
        }
        if let password { url.password = password }
        if url.username != nil, url.password == nil {
            throw ConfigError(key: key, "the URL names the ACL user \(url.username!) but no password (give redis_password_file)")
        }
        return url
    }

    /// The Redis engine's topology: one Redis or a cluster's seeds; nil: the memory engine.
    var redisTopology: RedisTopology? {
        if let redis { return .single(redis) }
        return redisCluster.isEmpty ? nil : .cluster(redisCluster)
    }

    /// The broker's knobs, with its access logger made now (after logging is set up).
    func brokerConfig() -> BrokerConfig {
        var b = broker
        b.accessLog = settings.accessLog ? Logger(label: "starling.access") : nil
        return b
    }

    /// The effective configuration, one log line (secrets masked).
    func logStartup(_ logger: Logger) {
        var fields: Logger.Metadata = ["event": "config", "version": "\(StarlingVersion.current)"]
        for e in settings.entries { fields[e.key.fileKey] = "\(e.display.trimmingQuotes)" }
        if let file = settings.configFile { fields["config"] = "\(file)" }
        logger.info("starting", metadata: fields)
        for w in settings.warnings { logger.warning("\(w)", metadata: ["event": "config_warning"]) }
    }
}

extension String {
    var trimmingQuotes: String {
        hasPrefix("\"") && hasSuffix("\"") && count >= 2 ? String(dropFirst().dropLast()) : self
    }
}
