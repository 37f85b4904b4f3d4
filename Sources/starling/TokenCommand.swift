// `starling token`: mints a token for a quick check or a script — the same claims the
// broker reads (docs/security.md). The signing key comes from a file, never a flag.
import ArgumentParser
import Foundation
import StarlingAuth
import StarlingConfig

struct Token: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a signed token (HS256 from a secret file, RS256/ES256 from a private key file).")

    @Option(help: "File holding the HS256 secret (the broker's jwt_secret_file).") var secretFile: String?
    @Option(help: "PEM file holding an RSA or P-256 private key (the broker gets its public key).") var privateKeyFile: String?
    @Option(help: "Channel or prefix* pattern the token may publish to (repeatable).") var publish: [String] = []
    @Option(help: "Channel or prefix* pattern the token may subscribe to (repeatable).") var subscribe: [String] = []
    @Option(help: "Channel or prefix* pattern the token may cancel (repeatable).") var cancel: [String] = []
    @Option(help: "Lifetime: seconds, or like 30m, 1h, 7d.") var ttl = "1h"
    @Option(help: "The token's subject (sub), shown in the broker's logs.") var sub: String?

    func validate() throws {
        guard (secretFile == nil) != (privateKeyFile == nil) else {
            throw ValidationError("give exactly one of --secret-file and --private-key-file")
        }
        for p in publish + subscribe + cancel where !ChannelPatterns.isValid(p) {
            throw ValidationError("'\(p)' is not a channel name or a prefix followed by *")
        }
        guard let seconds = Units.seconds(ttl), seconds >= 1 else { throw ValidationError("--ttl '\(ttl)' is not a duration of a second or more") }
        _ = seconds
    }

    func run() throws {
        let signer: TokenSigner
        if let secretFile {
            guard let data = FileManager.default.contents(atPath: secretFile), var secret = String(data: data, encoding: .utf8) else {
                throw ValidationError("cannot read --secret-file \(secretFile)")
            }
            while let last = secret.last, last == "\n" || last == "\r" { secret.removeLast() }
            do { signer = try TokenSigner(hmacSecret: secret) } catch { throw ValidationError("--secret-file \(secretFile): \(error)") }
        } else {
            let path = privateKeyFile!
            guard let data = FileManager.default.contents(atPath: path), let pem = String(data: data, encoding: .utf8) else {
                throw ValidationError("cannot read --private-key-file \(path)")
            }
            do { signer = try TokenSigner(privateKeyPEM: pem) } catch { throw ValidationError("--private-key-file \(path): \(error)") }
        }
        let now = Int(Date().timeIntervalSince1970)
        let token = try signer.token(publish: publish, subscribe: subscribe, cancel: cancel,
                                     expiresAt: now + Int(Units.seconds(ttl)!), subject: sub)
        print(token)
    }
}
