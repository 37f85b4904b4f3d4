// SettingKey: every setting of `starling serve`, once. Each has one name per source —
// `client_buffer` in a file, `STARLING_CLIENT_BUFFER` in the environment,
// `--client-buffer` on the command line — a kind that says how its text is read, a
// default and a help line. Adding a setting is one case here (and its @Option in the CLI).

public enum SettingKey: String, CaseIterable, Sendable {
    case config
    case listen
    case threads
    case heartbeat
    case turnPace = "turn_pace"
    case clientBuffer = "client_buffer"
    case maxQueuedBytes = "max_queued_bytes"
    case retainEvents = "retain_events"
    case retainSeconds = "retain_seconds"
    case maxEventBytes = "max_event_bytes"
    case maxBodyBytes = "max_body_bytes"
    case headTimeout = "head_timeout"
    case idleTimeout = "idle_timeout"
    case maxConnections = "max_connections"
    case maxConnectionsPerAddress = "max_connections_per_address"
    case drainTimeout = "drain_timeout"
    case corsOrigin = "cors_origin"
    case redis
    case redisPassword = "redis_password"
    case redisPasswordFile = "redis_password_file"
    case redisCluster = "redis_cluster"
    case redisWait = "redis_wait"
    case redisWaitTimeout = "redis_wait_timeout"
    case redisPace = "redis_pace"
    case jwtSecret = "jwt_secret"
    case jwtSecretFile = "jwt_secret_file"
    case jwtPublicKey = "jwt_public_key"
    case publicSubscribe = "public_subscribe"
    case subscribeFromStart = "subscribe_from_start"
    case mergeEvents = "merge_events"
    case jwtCookie = "jwt_cookie"
    case logLevel = "log_level"
    case logFormat = "log_format"
    case accessLog = "access_log"

    /// How a value's text is read.
    public enum Kind: Sendable, Equatable {
        case text
        /// Bytes: a whole number, or with a unit (`512KiB`, `1MiB`, `1GiB`, `64kB`).
        case bytes
        /// A whole number.
        case count
        /// Seconds: a number, or with a unit (`500ms`, `15s`, `10m`, `1h`).
        case seconds
        case bool
        /// One of the listed words.
        case choice([String])
        /// Repeatable: an array in a file, comma-separated in the environment, the flag given again.
        case list
        /// A file path (its content is read where the setting says so).
        case path
        case pathList
    }

    public var kind: Kind {
        switch self {
        case .config, .redisPasswordFile: return .path
        case .listen, .redis, .redisPassword, .jwtCookie: return .text
        case .heartbeat, .turnPace, .headTimeout, .idleTimeout, .drainTimeout, .retainSeconds, .redisWaitTimeout, .redisPace: return .seconds
        case .clientBuffer, .maxQueuedBytes, .maxEventBytes, .maxBodyBytes: return .bytes
        case .retainEvents, .maxConnections, .maxConnectionsPerAddress, .threads, .redisWait: return .count
        case .redisCluster, .corsOrigin, .publicSubscribe, .subscribeFromStart, .mergeEvents, .jwtSecret: return .list
        case .jwtSecretFile, .jwtPublicKey: return .pathList
        case .logLevel: return .choice(["trace", "debug", "info", "notice", "warning", "error", "critical"])
        case .logFormat: return .choice(["text", "json"])
        case .accessLog: return .bool
        }
    }

    /// The value when no source gives one (nil: unset).
    public var defaultText: String? {
        switch self {
        case .listen: return "127.0.0.1:8080"
        case .heartbeat: return "15"
        case .turnPace: return "0"
        case .clientBuffer: return "1MiB"
        case .maxQueuedBytes: return "1GiB"
        case .retainEvents: return "1000"
        case .retainSeconds: return "3600"
        case .maxEventBytes: return "256KiB"
        case .maxBodyBytes: return "4MiB"
        case .headTimeout: return "10"
        case .idleTimeout: return "60"
        case .maxConnections: return "19000"
        case .drainTimeout: return "10"
        case .jwtCookie: return "starling_token"
        case .logLevel: return "info"
        case .logFormat: return "text"
        case .accessLog: return "false"
        case .redisWait: return "0"
        case .redisWaitTimeout: return "1"
        case .redisPace: return "1ms"
        default: return nil
        }
    }

    /// Shown masked everywhere (`starling check`, the start-up line); never logged.
    public var isSecret: Bool { self == .jwtSecret || self == .redisPassword }

    /// Secrets have no flag: `/proc/PID/cmdline` shows every argument to local users.
    /// (`--jwt-secret` stays for compatibility, and the broker warns when it is used.)
    public var hasFlag: Bool { self != .redisPassword }

    /// The config file names the other settings; it cannot name itself.
    public var allowedInFile: Bool { self != .config }

    public var fileKey: String { rawValue }
    public var flag: String { "--" + rawValue.replacingUnderscores(with: "-") }
    public var environmentName: String { "STARLING_" + rawValue.uppercased() }

    public var help: String {
        switch self {
        case .config: return "Configuration file, TOML (.toml) or YAML (.yaml, .yml); the environment and flags override it."
        case .listen: return "Address to listen on: HOST:PORT, :PORT (all IPv4 interfaces), [IPv6]:PORT or NAME:PORT; port 0 picks a free one."
        case .threads: return "Event loops, each on its own thread with its own listener on the port (default: the cores this process may run on)."
        case .heartbeat: return "Seconds without traffic before a subscriber gets a heartbeat comment."
        case .turnPace: return "Least time between two turns of an event loop (like 1ms; at most 100ms; 0: none): less CPU per event under steady load, for up to that much latency."
        case .clientBuffer: return "Bytes one subscriber may have queued before it is treated as a slow consumer."
        case .maxQueuedBytes: return "Bytes all subscribers together may have queued; past it the largest queues are shed."
        case .retainEvents: return "Events retained per channel."
        case .retainSeconds: return "Seconds an event is retained."
        case .maxEventBytes: return "Largest event data in bytes."
        case .maxBodyBytes: return "Largest non-streaming request body in bytes."
        case .headTimeout: return "Seconds a client has to send a request head."
        case .idleTimeout: return "Seconds an idle keep-alive connection is kept."
        case .maxConnections: return "Most client connections at once; more get 503."
        case .maxConnectionsPerAddress: return "Most connections from one client address at once (default: no limit); more get 503."
        case .drainTimeout: return "Seconds SIGTERM waits for requests in progress before exiting."
        case .corsOrigin: return "Origin allowed to call from another origin (repeatable, or *)."
        case .redis: return "Store events in Redis streams at redis://[user[:password]@]host:port/db (default: the in-memory engine)."
        case .redisPassword: return "Redis password (environment or file only; overrides one in the URL)."
        case .redisPasswordFile: return "File holding the Redis password (overrides redis_password and the URL's)."
        case .redisCluster: return "Store events in a Redis Cluster named by seed nodes: redis://h1:7000,redis://h2:7001 (repeatable; not with --redis)."
        case .redisWait: return "Answer a publish 200 only once this many replicas confirm it (Redis WAIT); 0: once the master has it."
        case .redisWaitTimeout: return "How long a publish waits for --redis-wait replicas before answering 503 (like 500ms, 2s)."
        case .redisPace: return "Least time between two publish calls to one Redis (at most 100ms; 0: none): under load the publishes of that time leave in one call, much less CPU per event for up to that much latency; a client waiting on each answer is never held."
        case .jwtSecret: return "HS256 secret for JWTs (repeatable). Visible in /proc on the command line: prefer --jwt-secret-file."
        case .jwtSecretFile: return "File holding one HS256 secret (repeatable)."
        case .jwtPublicKey: return "RS256 or ES256 public key, PEM file (repeatable)."
        case .publicSubscribe: return "Channel or prefix* pattern anonymous clients may subscribe to (repeatable)."
        case .subscribeFromStart: return "Channel or prefix* pattern whose subscribers start at the earliest retained event when they give no resume point (repeatable; for per-generation channels)."
        case .mergeEvents: return "Event name whose string-data events may be merged into one (concatenated text, last ID) for a slow subscriber or a ?merge=1 replay (repeatable; for token events)."
        case .jwtCookie: return "Cookie that may carry the JWT (after Authorization: Bearer and ?access_token=)."
        case .logLevel: return "Log level: trace, debug, info, notice, warning, error, critical."
        case .logFormat: return "Log format: text or json (one JSON object per line)."
        case .accessLog: return "Log one line per answered request: status, route, channel, bytes, duration (never the query string)."
        }
    }

    /// The key a file or environment name means, or nil.
    static func fromFileKey(_ key: String) -> SettingKey? { SettingKey(rawValue: key) }

    static func fromEnvironment(_ name: String) -> SettingKey? {
        guard name.hasPrefix("STARLING_") else { return nil }
        return SettingKey(rawValue: String(name.dropFirst("STARLING_".count)).lowercased())
    }
}

extension String {
    func replacingUnderscores(with s: Character) -> String { String(map { $0 == "_" ? s : $0 }) }
}
