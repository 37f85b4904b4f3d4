// ServeOptions: the flags of `starling serve` and `starling check`, one per SettingKey
// that may be given on the command line. Every one is optional here: a flag given wins
// over STARLING_* and the config file, a flag left out lets them (or the default) speak.
// Values stay text, so a flag, a variable and a file line are read by the same rules.
import ArgumentParser
import StarlingConfig

struct ServeOptions: ParsableArguments {
    @Option(help: help(.config)) var config: String?
    @Option(help: help(.listen)) var listen: String?
    @Option(help: help(.threads)) var threads: String?
    @Option(help: help(.heartbeat)) var heartbeat: String?
    @Option(help: help(.turnPace)) var turnPace: String?
    @Option(help: help(.clientBuffer)) var clientBuffer: String?
    @Option(help: help(.maxQueuedBytes)) var maxQueuedBytes: String?
    @Option(help: help(.retainEvents)) var retainEvents: String?
    @Option(help: help(.retainSeconds)) var retainSeconds: String?
    @Option(help: help(.maxEventBytes)) var maxEventBytes: String?
    @Option(help: help(.maxBodyBytes)) var maxBodyBytes: String?
    @Option(help: help(.headTimeout)) var headTimeout: String?
    @Option(help: help(.idleTimeout)) var idleTimeout: String?
    @Option(help: help(.maxConnections)) var maxConnections: String?
    @Option(help: help(.maxConnectionsPerAddress)) var maxConnectionsPerAddress: String?
    @Option(help: help(.drainTimeout)) var drainTimeout: String?
    @Option(help: help(.corsOrigin)) var corsOrigin: [String] = []
    @Option(help: help(.redis)) var redis: String?
    @Option(help: help(.redisPasswordFile)) var redisPasswordFile: String?
    @Option(help: help(.redisCluster)) var redisCluster: [String] = []
    @Option(help: help(.redisWait)) var redisWait: String?
    @Option(help: help(.redisWaitTimeout)) var redisWaitTimeout: String?
    @Option(help: help(.redisPace)) var redisPace: String?
    @Option(help: help(.jwtSecret)) var jwtSecret: [String] = []
    @Option(help: help(.jwtSecretFile)) var jwtSecretFile: [String] = []
    @Option(help: help(.jwtPublicKey)) var jwtPublicKey: [String] = []
    @Option(help: help(.publicSubscribe)) var publicSubscribe: [String] = []
    @Option(help: help(.subscribeFromStart)) var subscribeFromStart: [String] = []
    @Option(help: help(.mergeEvents)) var mergeEvents: [String] = []
    @Option(help: help(.jwtCookie)) var jwtCookie: String?
    @Option(help: help(.logLevel)) var logLevel: String?
    @Option(help: help(.logFormat)) var logFormat: String?
    @Flag(inversion: .prefixedNo, help: help(.accessLog)) var accessLog: Bool?

    private static func help(_ key: SettingKey) -> ArgumentHelp {
        let env = key.environmentName
        let def = key.defaultText.map { " (default: \($0))" } ?? ""
        return ArgumentHelp("\(key.help)\(def) [\(env)]")
    }

    /// The flags given, as the highest layer.
    var layer: ConfigLayer {
        var l = ConfigLayer()
        func put(_ key: SettingKey, _ value: String?) {
            if let value { l.set(key, .scalar(value), from: .flag(key.flag)) }
        }
        func put(_ key: SettingKey, _ values: [String]) {
            if !values.isEmpty { l.set(key, .list(values), from: .flag(key.flag)) }
        }
        put(.config, config)
        put(.listen, listen)
        put(.threads, threads)
        put(.heartbeat, heartbeat)
        put(.turnPace, turnPace)
        put(.clientBuffer, clientBuffer)
        put(.maxQueuedBytes, maxQueuedBytes)
        put(.retainEvents, retainEvents)
        put(.retainSeconds, retainSeconds)
        put(.maxEventBytes, maxEventBytes)
        put(.maxBodyBytes, maxBodyBytes)
        put(.headTimeout, headTimeout)
        put(.idleTimeout, idleTimeout)
        put(.maxConnections, maxConnections)
        put(.maxConnectionsPerAddress, maxConnectionsPerAddress)
        put(.drainTimeout, drainTimeout)
        put(.corsOrigin, corsOrigin)
        put(.redis, redis)
        put(.redisPasswordFile, redisPasswordFile)
        put(.redisCluster, redisCluster)
        put(.redisWait, redisWait)
        put(.redisWaitTimeout, redisWaitTimeout)
        put(.redisPace, redisPace)
        put(.jwtSecret, jwtSecret)
        put(.jwtSecretFile, jwtSecretFile)
        put(.jwtPublicKey, jwtPublicKey)
        put(.publicSubscribe, publicSubscribe)
        put(.subscribeFromStart, subscribeFromStart)
        put(.mergeEvents, mergeEvents)
        put(.jwtCookie, jwtCookie)
        put(.logLevel, logLevel)
        put(.logFormat, logFormat)
        put(.accessLog, accessLog.map { "\($0)" })
        return l
    }
}
