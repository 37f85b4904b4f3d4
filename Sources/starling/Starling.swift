// starling: the command line. Wiring only: read the configuration (file < STARLING_* <
// flags, Sources/StarlingConfig), build the store and the broker on an event loop, run
// it, drain on SIGTERM/SIGINT. `starling token` and `starling check` live beside it.
import ArgumentParser
import Foundation
import Logging
import StarlingAuth
import StarlingConfig
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
        version: StarlingVersion.current,
        subcommands: [Serve.self, Token.self, Check.self],
        defaultSubcommand: Serve.self)
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the broker.",
        discussion: "Every option may also come from a STARLING_* variable or the --config file; flags win, then the environment, then the file.")

    @OptionGroup var options: ServeOptions

    func run() throws {
        let runtime = try Configuration.load(options)
        let settings = runtime.settings
        let auth = try Configuration.authorizer(runtime)
        LogSetup.bootstrap(level: Logger.Level(rawValue: settings.logLevel) ?? .info, format: settings.logFormat)
        let logger = Logger(label: "starling")
        signal(SIGPIPE, SIG_IGN)
        runtime.logStartup(logger)

        let loopCount = settings.threads ?? LoopGroup.availableCores
        let group = LoopGroup(count: loopCount)
        for loop in group.loops { loop.pace(microseconds: Int((settings.turnPaceSeconds * 1_000_000).rounded())) }
        let stores: [EventStore]
        if let topology = runtime.redisTopology {
            // Each loop keeps its own two Redis connections per node, as separate nodes would.
            let redisStores = group.loops.map {
                RedisStore(loop: $0, redis: topology, waitReplicas: settings.redisWait,
                           waitTimeoutMs: Int((settings.redisWaitTimeoutSeconds * 1000).rounded(.up)),
                           paceNs: UInt64((settings.redisPaceSeconds * 1e9).rounded()),
                           retainEvents: settings.retainEvents, retainSeconds: settings.retainSeconds, logger: logger)
            }
            for r in redisStores { r.start() }
            // Listen either way (/readyz says 503 until Redis answers), but give it a moment.
            for r in redisStores where !r.waitUntilReady(timeoutMs: 5_000) {
                logger.warning("redis \(runtime.redis.map { "\($0)" } ?? "cluster") is not reachable yet; retrying")
                break
            }
            stores = redisStores
        } else {
            stores = PartitionedMemoryStore.group(loops: group.loops, retainEvents: settings.retainEvents,
                                                  retainSeconds: settings.retainSeconds)
        }
        // One authorizer per loop: its token cache is then the loop's own, with no lock between loops.
        let authorizers = [auth] + (try group.loops.dropFirst().map { _ in try Authorizer(config: runtime.auth) })
        let brokerConfig = runtime.brokerConfig()
        let brokers = group.loops.indices.map {
            Broker(loop: group.loops[$0], store: stores[$0], config: brokerConfig, auth: authorizers[$0], logger: logger)
        }
        if auth.isOpen {
            logger.warning("""
                *** OPEN MODE: no jwt_secret, jwt_secret_file or jwt_public_key given. ANYONE who can reach this port \
                can publish to and subscribe to EVERY channel. Configure keys before exposing it. ***
                """, metadata: ["event": "open_mode"])
        }
        let budget = ConnectionBudget(limit: settings.maxConnections, perAddressLimit: settings.maxConnectionsPerAddress)
        _ = BrokerGroup(brokers: brokers, budget: budget)
        let host = settings.listen.bindHost
        var bound = try brokers[0].listen(host: host, port: settings.listen.port, sharedPort: loopCount > 1)
        for b in brokers.dropFirst() { bound = try b.listen(host: host, port: bound, sharedPort: true) }
        // Tests and scripts read this line to learn the port.
        print("starling listening on http://\(host.contains(":") ? "[\(host)]" : host):\(bound) (engine: \(runtime.redis != nil ? "redis" : runtime.redisCluster.isEmpty ? "memory" : "redis-cluster"), threads: \(loopCount))")
        fflush(nil)  // all streams: the test harness reads this line through a pipe

        // Signals arrive on loop 0 (this thread); the drain reaches every loop from there.
        var draining = false
        let drain = {
            guard !draining else { return }
            draining = true
            let open = budget.inUse
            logger.notice("draining: closing subscribers, finishing answers in flight",
                          metadata: ["event": "drain_start", "connections": .stringConvertible(open)])
            brokers[0].drainAll(deadlineMs: UInt64(settings.drainTimeoutSeconds * 1000)) {
                let left = budget.inUse
                logger.notice("drained, exiting", metadata: [
                    "event": "drain_done", "connections_left": .stringConvertible(left), "timed_out": "\(left > 0)"])
                Glibc.exit(0)
            }
        }
        group.loops[0].onSignal(SIGTERM, drain)
        group.loops[0].onSignal(SIGINT, drain)
        group.run()
    }
}

/// Configuration errors end the process with EX_CONFIG (78) and one line naming the
/// setting; the systemd unit does not restart on 78.
enum Configuration {
    static let exitCode: Int32 = 78

    static func load(_ options: ServeOptions) throws -> Runtime {
        do throws(ConfigError) {
            return try Runtime(ServeSettings.load(flags: options.layer, environment: ProcessInfo.processInfo.environment))
        } catch {
            fail("\(error)")
        }
    }

    static func authorizer(_ runtime: Runtime) throws -> Authorizer {
        do { return try Authorizer(config: runtime.auth) } catch { fail("\(error)") }
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("starling: configuration error: \(message)\n".utf8))
        Glibc.exit(exitCode)
    }
}
