// ServeSettings: what `starling serve` runs with, read from its three sources (file <
// STARLING_* environment < flags), every value checked against its kind and bounds, and
// secrets read from the files named for them. Any bad value is a ConfigError naming the
// setting and where it came from; nothing falls back to a default in silence.
import Foundation

public struct ServeSettings: Sendable {
    public enum LogFormat: String, Sendable { case text, json }

    public var listen: ListenAddress
    /// Event loops (`threads`); nil: one per core the process may run on.
    public var threads: Int?
    public var heartbeatSeconds: Double
    /// Least seconds between two loop turns (`turn_pace`); 0: none.
    public var turnPaceSeconds: Double
    public var clientBufferBytes: Int
    public var maxQueuedBytes: Int
    public var retainEvents: Int
    public var retainSeconds: Int
    public var maxEventBytes: Int
    public var maxBodyBytes: Int
    public var headTimeoutSeconds: Double
    public var idleTimeoutSeconds: Double
    public var maxConnections: Int
    /// Nil: no per-address limit.
    public var maxConnectionsPerAddress: Int?
    public var drainTimeoutSeconds: Double
    public var corsOrigins: [String]
    /// The `redis` URL as given (nil: the memory engine). Its password, if any, is a secret.
    public var redisURL: String?
    /// From `redis_password_file`, else `redis_password`; overrides the URL's.
    public var redisPassword: String?
    /// `redis_cluster`: seed node URLs as given (empty: not a cluster). Exclusive with `redis`.
    public var redisClusterURLs: [String] = []
    /// `redis_wait`: replicas a publish waits for (0: none); `redis_wait_timeout`: how long.
    public var redisWait: Int = 0
    public var redisWaitTimeoutSeconds: Double = 1
    /// `redis_pace`: least seconds between two publish calls to one Redis; 0: none. Used
    /// with `redis` only (the default is ignored by the memory engine and a cluster).
    public var redisPaceSeconds: Double = 0
    /// `jwt_secret` values, then the content of each `jwt_secret_file`.
    public var jwtSecrets: [String]
    /// PEM text of each `jwt_public_key` file, in order.
    public var jwtPublicKeyPEMs: [String]
    public var publicSubscribe: [String]
    /// Patterns of channels a subscriber with no resume point reads from `earliest`.
    public var subscribeFromStart: [String]
    /// Event names whose string-data events may be merged (token merge).
    public var mergeEvents: [String]
    public var jwtCookie: String
    /// A swift-log level name (checked).
    public var logLevel: String
    public var logFormat: LogFormat
    public var accessLog: Bool
    /// The configuration file read, if any.
    public var configFile: String?
    /// Things to tell the operator at start-up (a secret on the command line).
    public var warnings: [String] = []
    /// Every setting's effective value, secrets masked, and its source: for `starling
    /// check` and the start-up log line.
    public var entries: [Entry] = []

    public struct Entry: Sendable, Equatable {
        public var key: SettingKey
        /// TOML syntax; secrets are "***".
        public var display: String
        public var source: ConfigSource
    }

    /// Reads the file named by `--config` (or STARLING_CONFIG), then the environment, then
    /// the flags given.
    public static func load(flags: ConfigLayer, environment: [String: String]) throws(ConfigError) -> ServeSettings {
        let env = try ConfigLayer.environment(environment)
        var file = ConfigLayer()
        var configFile: String?
        if let (raw, _) = flags.values[.config] ?? env.values[.config], let path = raw.items.last, !path.isEmpty {
            configFile = path
            file = try ConfigLayer.file(at: path)
        }
        var reader = Reader(layers: [flags, env, file])
        var s = try ServeSettings(reading: &reader)
        s.configFile = configFile
        s.entries = reader.entries
        s.warnings = reader.warnings
        return s
    }

    private init(reading r: inout Reader) throws(ConfigError) {
        listen = try r.value(.listen) { text, fail throws(ConfigError) in
            do throws(ConfigError) { return try ListenAddress.parse(text) } catch { throw fail(error.message) }
        } display: { "\"\($0.text)\"" }
        if r.raw(.threads) != nil {
            let n = try r.count(.threads, min: 1)
            guard n <= 256 else { throw r.error(.threads, "\(n) is above the most allowed, 256") }
            threads = n
        } else {
            threads = nil
        }
        heartbeatSeconds = try r.seconds(.heartbeat, min: 0.1)
        turnPaceSeconds = try r.seconds(.turnPace, min: 0)
        guard turnPaceSeconds <= 0.1 else { throw r.error(.turnPace, "\(turnPaceSeconds) s is above the most allowed, 100ms") }
        clientBufferBytes = try r.bytes(.clientBuffer, min: 1024)
        maxQueuedBytes = try r.bytes(.maxQueuedBytes, min: 1024)
        retainEvents = try r.count(.retainEvents, min: 1)
        let retain = try r.seconds(.retainSeconds, min: 1)
        guard retain == retain.rounded() else { throw r.error(.retainSeconds, "must be whole seconds") }
        retainSeconds = Int(retain)
        maxEventBytes = try r.bytes(.maxEventBytes, min: 1)
        maxBodyBytes = try r.bytes(.maxBodyBytes, min: 1)
        headTimeoutSeconds = try r.seconds(.headTimeout, min: 0.1)
        idleTimeoutSeconds = try r.seconds(.idleTimeout, min: 0.1)
        maxConnections = try r.count(.maxConnections, min: 1)
        maxConnectionsPerAddress = r.raw(.maxConnectionsPerAddress) == nil ? nil : try r.count(.maxConnectionsPerAddress, min: 1)
        drainTimeoutSeconds = try r.seconds(.drainTimeout, min: 0)
        corsOrigins = try r.list(.corsOrigin) { o in
            o == "*" || o.hasPrefix("http://") || o.hasPrefix("https://") ? nil : "'\(o)' is not * or an http(s):// origin"
        }
        redisURL = try r.optionalText(.redis) { u in
            u.hasPrefix("redis://") || u.hasPrefix("rediss://") ? nil : "'\(Self.maskedURL(u))' is not a redis:// or rediss:// URL"
        } display: { Self.maskedURL($0) }
        redisClusterURLs = try r.list(.redisCluster).flatMap { $0.split(separator: ",").map { String($0).trimmingSpaces() } }
            .filter { !$0.isEmpty }
        for u in redisClusterURLs where !(u.hasPrefix("redis://") || u.hasPrefix("rediss://")) {
            throw r.error(.redisCluster, "'\(Self.maskedURL(u))' is not a redis:// or rediss:// URL")
        }
        if !redisClusterURLs.isEmpty, let k = r.entries.lastIndex(where: { $0.key == .redisCluster }) {
            r.entries[k].display = "[" + redisClusterURLs.map { "\"\(Self.maskedURL($0))\"" }.joined(separator: ", ") + "]"
        }
        if redisURL != nil, !redisClusterURLs.isEmpty {
            throw r.error(.redisCluster, "names a cluster, and redis names one Redis: give one of the two")
        }
        redisWait = try r.count(.redisWait, min: 0)
        redisWaitTimeoutSeconds = try r.seconds(.redisWaitTimeout, min: 0.001)
        if redisWait > 0, redisURL == nil, redisClusterURLs.isEmpty {
            throw r.error(.redisWait, "needs redis or redis_cluster (the memory engine has no replicas)")
        }
        redisPaceSeconds = try r.seconds(.redisPace, min: 0)
        guard redisPaceSeconds <= 0.1 else { throw r.error(.redisPace, "\(redisPaceSeconds) s is above the most allowed, 100ms") }
        // The default pace applies where there is one Redis; given otherwise, it is a mistake.
        if redisPaceSeconds > 0, redisURL == nil, r.source(.redisPace) != .defaultValue {
            throw r.error(.redisPace, redisClusterURLs.isEmpty ? "needs redis (the memory engine calls no Redis)"
                : "needs redis, not redis_cluster (a cluster's publishes are not batched: the keys of one call must share a slot)")
        }
        let inlinePassword = try r.optionalText(.redisPassword, secret: true)
        let passwordFile = try r.optionalText(.redisPasswordFile)
        if let passwordFile { redisPassword = try r.readSecret(.redisPasswordFile, passwordFile) } else { redisPassword = inlinePassword }
        let inlineSecrets = try r.list(.jwtSecret, secret: true)
        if case .flag? = r.source(.jwtSecret) {
            r.warnings.append("--jwt-secret puts the secret on the command line, where local users can read it in /proc; use --jwt-secret-file or STARLING_JWT_SECRET")
        }
        for (k, secret) in inlineSecrets.enumerated() where secret.utf8.count < Self.minSecretBytes {
            throw r.error(.jwtSecret, "secret #\(k + 1) is \(secret.utf8.count) bytes; HS256 needs at least \(Self.minSecretBytes)")
        }
        let secretFiles = try r.list(.jwtSecretFile)
        var secrets = inlineSecrets
        for path in secretFiles {
            let secret = try r.readSecret(.jwtSecretFile, path)
            guard secret.utf8.count >= Self.minSecretBytes else {
                throw r.error(.jwtSecretFile, "\(path) holds \(secret.utf8.count) bytes; HS256 needs at least \(Self.minSecretBytes)")
            }
            secrets.append(secret)
        }
        jwtSecrets = secrets
        let keyFiles = try r.list(.jwtPublicKey)
        var pems: [String] = []
        for path in keyFiles { pems.append(try r.readFile(.jwtPublicKey, path)) }
        jwtPublicKeyPEMs = pems
        publicSubscribe = try r.list(.publicSubscribe)
        subscribeFromStart = try r.list(.subscribeFromStart)
        mergeEvents = try r.list(.mergeEvents)
        jwtCookie = try r.value(.jwtCookie) { text, fail throws(ConfigError) in
            guard !text.isEmpty, text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_-.".contains($0)) }) else {
                throw fail("'\(text)' is not a cookie name (letters, digits, _ - .)")
            }
            return text
        } display: { "\"\($0)\"" }
        logLevel = try r.choice(.logLevel)
        logFormat = LogFormat(rawValue: try r.choice(.logFormat)) ?? .text
        accessLog = try r.value(.accessLog) { text, fail throws(ConfigError) in
            guard let b = Units.bool(text) else { throw fail("'\(text)' is not true or false") }
            return b
        } display: { "\($0)" }
    }

    /// A shorter HS256 secret is guessable (and jwt-kit refuses it).
    public static let minSecretBytes = 32

    /// `redis://user:***@host:port/db`: the URL with its password masked.
    public static func maskedURL(_ url: String) -> String {
        guard let scheme = url.range(of: "://") else { return url }
        let rest = url[scheme.upperBound...]
        let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        guard let at = rest[..<authorityEnd].lastIndex(of: "@") else { return url }
        let userinfo = rest[..<at]
        let user = userinfo.firstIndex(of: ":").map { userinfo[..<$0] + ":***" } ?? userinfo[...]
        return String(url[..<scheme.upperBound]) + user + String(rest[at...])
    }

    /// The effective configuration as TOML, one setting a line, with its source.
    public func describe() -> String {
        let width = entries.map { $0.key.fileKey.count + $0.display.count + 3 }.max() ?? 0
        return entries.map { e in
            let line = "\(e.key.fileKey) = \(e.display)"
            return line.padding(toLength: max(line.count, width), withPad: " ", startingAt: 0) + "  # \(e.source)"
        }.joined(separator: "\n")
    }
}

/// Picks each setting's value from the first layer that has it (flags, environment,
/// file), else its default, and reads it by kind; remembers what it returned for display.
struct Reader {
    let layers: [ConfigLayer]
    var entries: [ServeSettings.Entry] = []
    var warnings: [String] = []

    init(layers: [ConfigLayer]) { self.layers = layers }

    func raw(_ key: SettingKey) -> (RawValue, ConfigSource)? {
        for layer in layers { if let v = layer.values[key] { return v } }
        return key.defaultText.map { (.scalar($0), .defaultValue) }
    }

    func source(_ key: SettingKey) -> ConfigSource? { raw(key)?.1 }

    func error(_ key: SettingKey, _ message: String) -> ConfigError {
        let from = source(key).map { $0 == .defaultValue ? "" : " (\($0))" } ?? ""
        return ConfigError(key: key.fileKey, message + from)
    }

    /// One text, read by `parse`, which throws through `fail` with a message.
    mutating func value<T>(_ key: SettingKey, _ parse: (String, (String) -> ConfigError) throws(ConfigError) -> T,
                           display: (T) -> String) throws(ConfigError) -> T {
        guard let (raw, source) = raw(key) else { throw error(key, "has no value") }
        guard case .scalar(let text) = raw else { throw error(key, "takes one value, not a list") }
        let v = try parse(text) { error(key, $0) }
        entries.append(.init(key: key, display: display(v), source: source))
        return v
    }

    mutating func optionalText(_ key: SettingKey, secret: Bool = false, check: (String) -> String? = { _ in nil },
                               display: (String) -> String = { $0 }) throws(ConfigError) -> String? {
        guard let (raw, source) = raw(key) else { return nil }
        guard case .scalar(let text) = raw else { throw error(key, "takes one value, not a list") }
        if text.isEmpty, source != .defaultValue { return nil }
        if let why = check(text) { throw error(key, why) }
        entries.append(.init(key: key, display: secret ? "\"***\"" : "\"\(display(text))\"", source: source))
        return text
    }

    mutating func list(_ key: SettingKey, secret: Bool = false, check: (String) -> String? = { _ in nil }) throws(ConfigError) -> [String] {
        guard let (raw, source) = raw(key) else { return [] }
        let items = raw.items
        for item in items {
            if item.isEmpty { throw error(key, "has an empty item") }
            if let why = check(item) { throw error(key, why) }
        }
        if !items.isEmpty {
            entries.append(.init(key: key, display: "[" + items.map { secret ? "\"***\"" : "\"\($0)\"" }.joined(separator: ", ") + "]",
                                 source: source))
        }
        return items
    }

    mutating func bytes(_ key: SettingKey, min: Int) throws(ConfigError) -> Int {
        try value(key, { text, fail throws(ConfigError) in
            guard let n = Units.bytes(text) else { throw fail("'\(text)' is not a size in bytes (like 1048576 or 1MiB)") }
            guard n >= min else { throw fail("\(n) is below the least allowed, \(min)") }
            return n
        }, display: { "\($0)" })
    }

    mutating func count(_ key: SettingKey, min: Int) throws(ConfigError) -> Int {
        try value(key, { text, fail throws(ConfigError) in
            guard let n = Int(text.filter { $0 != "_" }) else { throw fail("'\(text)' is not a whole number") }
            guard n >= min else { throw fail("\(n) is below the least allowed, \(min)") }
            return n
        }, display: { "\($0)" })
    }

    mutating func seconds(_ key: SettingKey, min: Double) throws(ConfigError) -> Double {
        try value(key, { text, fail throws(ConfigError) in
            guard let n = Units.seconds(text) else { throw fail("'\(text)' is not a duration (seconds, or like 500ms, 15s, 10m, 1h)") }
            guard n >= min else { throw fail("\(text) is below the least allowed, \(min) s") }
            return n
        }, display: { $0 == $0.rounded() ? "\(Int($0))" : "\($0)" })
    }

    mutating func choice(_ key: SettingKey) throws(ConfigError) -> String {
        guard case .choice(let words) = key.kind else { preconditionFailure("\(key) is not a choice") }
        return try value(key, { text, fail throws(ConfigError) in
            guard words.contains(text) else { throw fail("'\(text)' is not one of \(words.joined(separator: ", "))") }
            return text
        }, display: { "\"\($0)\"" })
    }

    /// A secret file: its content without the trailing newline; empty is an error.
    func readSecret(_ key: SettingKey, _ path: String) throws(ConfigError) -> String {
        var text = try readFile(key, path)
        while let last = text.last, last == "\n" || last == "\r" { text.removeLast() }
        guard !text.isEmpty else { throw error(key, "\(path) is empty") }
        return text
    }

    func readFile(_ key: SettingKey, _ path: String) throws(ConfigError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw error(key, "cannot read \(path)") }
        guard let text = String(data: data, encoding: .utf8) else { throw error(key, "\(path) is not UTF-8 text") }
        return text
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        var t = Substring(self)
        while t.first == " " { t = t.dropFirst() }
        while t.last == " " { t = t.dropLast() }
        return String(t)
    }
}
