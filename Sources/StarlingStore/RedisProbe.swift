// RedisProbe: one blocking round trip to Redis for `starling check` — connect, AUTH,
// SELECT, HELLO 2 (INFO on a Redis older than 6) — with hiredis's synchronous API, apart from the broker's loop. The only
// other file (beside RedisConnection.swift) that touches hiredis pointers; nothing on the
// serving path calls it.
import CHiredis
#if canImport(Glibc)
import Glibc
#endif

public enum RedisProbe {
    public struct Result: Sendable {
        /// `redis_version` from INFO server.
        public var version: String
        /// Major version; Starling's gap detection needs 7 (XINFO's max-deleted-entry-id).
        public var major: Int
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Connects within `timeoutSeconds`, authenticates and selects the URL's db, asks
    /// for the server's version.
    public static func check(_ url: RedisURL, timeoutSeconds: Int = 3) throws(Failure) -> Result {
        let tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        guard let c = redisConnectWithTimeout(url.host, Int32(url.port), tv) else { throw Failure(description: "cannot allocate a context") }
        defer { redisFree(c) }
        if c.pointee.err != 0 {
            throw Failure(description: "cannot connect to \(url): \(withUnsafePointer(to: c.pointee.errstr) { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) })")
        }
        redisSetTimeout(c, tv)
        if let password = url.password {
            let args = ["AUTH"] + (url.username.map { [$0] } ?? []) + [password]
            if case .error(let e) = try command(c, args, url) { throw Failure(description: "AUTH refused by \(url): \(e)") }
        }
        if url.db != 0, case .error(let e) = try command(c, ["SELECT", String(url.db)], url) {
            throw Failure(description: "SELECT \(url.db) refused by \(url): \(e)")
        }
        // HELLO 2 tells the version in any ACL that allows connecting (INFO is @dangerous,
        // which a least-privilege user lacks); Redis before 6 knows only INFO.
        let hello = try command(c, ["HELLO", "2"], url)
        if case .array(let items) = hello, let k = items.firstIndex(where: { $0.text == "version" }), k + 1 < items.count,
           let version = items[k + 1].text {
            return Result(version: version, major: Int(version.split(separator: ".").first ?? "") ?? 0)
        }
        let info = try command(c, ["INFO", "server"], url)
        if case .error(let e) = info { throw Failure(description: "INFO refused by \(url): \(e)") }
        guard let text = info.text,
              let line = text.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("redis_version:") }) else {
            throw Failure(description: "\(url) did not tell its version")
        }
        let version = String(line.dropFirst("redis_version:".count))
        return Result(version: version, major: Int(version.split(separator: ".").first ?? "") ?? 0)
    }

    private static func command(_ c: UnsafeMutablePointer<redisContext>, _ args: [String], _ url: RedisURL) throws(Failure) -> RedisReply {
        let copies = args.map { strdup($0)! }
        defer { copies.forEach { free($0) } }
        let lengths = args.map { $0.utf8.count }
        let raw = copies.map { UnsafePointer<CChar>($0) as UnsafePointer<CChar>? }
        let reply = raw.withUnsafeBufferPointer { argv in
            lengths.withUnsafeBufferPointer { lens in
                redisCommandArgv(c, Int32(args.count), UnsafeMutablePointer(mutating: argv.baseAddress!), lens.baseAddress!)
            }
        }
        guard let reply else {
            throw Failure(description: "\(url) did not answer \(args[0]): \(withUnsafePointer(to: c.pointee.errstr) { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) })")
        }
        defer { freeReplyObject(reply) }
        let r = reply.assumingMemoryBound(to: redisReply.self).pointee
        switch r.type {
        case REDIS_REPLY_ERROR: return .error(r.str.map { String(cString: $0) } ?? "")
        case REDIS_REPLY_STRING, REDIS_REPLY_STATUS:
            return .bulk(r.str.map { Array(UnsafeRawBufferPointer(start: $0, count: r.len)) } ?? [])
        case REDIS_REPLY_INTEGER: return .integer(Int64(r.integer))
        case REDIS_REPLY_ARRAY:
            // HELLO's map, flattened: only its string and integer members are read.
            return .array((0..<r.elements).map { i in
                guard let e = r.element[i]?.pointee else { return .null }
                switch e.type {
                case REDIS_REPLY_STRING, REDIS_REPLY_STATUS: return .bulk(e.str.map { Array(UnsafeRawBufferPointer(start: $0, count: e.len)) } ?? [])
                case REDIS_REPLY_INTEGER: return .integer(Int64(e.integer))
                default: return .null
                }
            })
        default: return .null
        }
    }
}
