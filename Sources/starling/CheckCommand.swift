// `starling check`: reads the configuration exactly as `serve` would, reads the keys,
// resolves the listen address, connects to Redis (when configured), and prints the
// effective configuration with secrets masked. Exit 0 when `serve` would start, 1 with
// one "problem:" line per reason when it would not.
import ArgumentParser
import Foundation
import StarlingAuth
import StarlingConfig
import StarlingServer
import StarlingStore

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate the configuration, read the keys, connect to Redis; print what serve would run with.")

    @OptionGroup var options: ServeOptions

    func run() throws {
        var problems: [String] = []
        print("starling \(StarlingVersion.current): checking the configuration")
        let runtime: Runtime
        do throws(ConfigError) {
            runtime = try Runtime(ServeSettings.load(flags: options.layer, environment: ProcessInfo.processInfo.environment))
        } catch {
            print("problem: \(error)")
            print("configuration: 1 problem")
            throw ExitCode(1)
        }
        let s = runtime.settings
        print("\n# effective configuration\(s.configFile.map { " (file \($0))" } ?? "")")
        print(s.describe())
        print("")
        for w in s.warnings { print("warning: \(w)") }
        print("ok: settings read and valid")

        do {
            let auth = try Authorizer(config: runtime.auth)
            if auth.isOpen {
                print("warning: no keys: the broker would run in OPEN MODE (anyone may publish and subscribe)")
            } else {
                print("ok: keys: \(s.jwtSecrets.count) HS256 secret(s), \(s.jwtPublicKeyPEMs.count) public key(s)")
            }
        } catch {
            problems.append("keys: \(error)")
        }
        print("ok: listen \(s.listen.text) binds \(s.listen.bindHost) port \(s.listen.port)")

        let probed = runtime.redis.map { [$0] } ?? runtime.redisCluster
        for url in probed {
            do throws(RedisProbe.Failure) {
                let r = try RedisProbe.check(url)
                if r.major < 7 {
                    problems.append("redis: \(url) runs Redis \(r.version); Starling needs 7 or later (XINFO max-deleted-entry-id tells lost history)")
                } else {
                    print("ok: redis \(url): Redis \(r.version)\(url.password == nil ? "" : ", AUTH accepted")")
                }
            } catch {
                problems.append("redis: \(error)")
            }
        }
        if probed.isEmpty { print("ok: engine: memory (no redis)") }

        for p in problems { print("problem: \(p)") }
        if problems.isEmpty {
            print("configuration OK")
        } else {
            print("configuration: \(problems.count) problem\(problems.count == 1 ? "" : "s")")
            throw ExitCode(1)
        }
    }
}
