// The publish fast lane: `POST /v1/channels/{ch}/events` with one JSON or text event, the
// request AI workers send for every token, taken from the connection's read buffer with no
// Request made (HTTPHandler.takePlain). Why a lane of its own: on the many-channels shape
// the general path (a Request with its head copied and its headers spanned, routing,
// header lookups by name, the handler's dispatch) was a third of the user-space
// instructions of a publish (callgrind, ops/bench/hotpath.sh), and the floor (SPEC §9)
// does none of it.
//
// It takes only what it reads exactly as the general path would: no access log, a path
// with no query and no escape, only the headers a plain client sends
// (PlainRequestBytes.onlyCommonHeaders), and a body read within the limits:
// `application/json` of the shape QuickEvent reads, or `text/plain` (one event, its data
// the text, as `?event=`-less text publishes are); with auth, an `Authorization: Bearer`
// token that allows publishing on the channel (the usual worker: one token, cached after
// its first check, on every publish). Anything else (no token or a refused one, a cookie,
// CORS, `Starling-Lease`, `Expect`, NDJSON, a bad body, a percent-escaped or invalid name)
// returns false untouched and the general path reads it, errors and refusals included.
// Storing and answering are the general path's; the channel's String is made once
// (ChannelNames).
import StarlingAuth
import StarlingCore
import StarlingHTTP

extension Broker {
    public func takePlain(_ r: PlainRequestBytes, on connection: Connection) -> Bool {
        guard r.isPost, config.accessLog == nil, let channel = plainPublishChannel(r.url),
              let drafts = Self.plainDrafts(r, limits: publishLimits), mayPublish(r, on: channel) else { return false }
        let receivedNs = MonotonicClock.nowNs()
        let seq = connection.acceptPlain()
        let now = store.appendNow(drafts, to: channel) { result in
            answerPlain(seq, receivedNs, connection, counted(result, channel: channel, perChannel: false))
        }
        if now { return true }
        store.append(drafts, to: channel) { [self] result in
            answerPlain(seq, receivedNs, connection, counted(result, channel: channel, perChannel: false))
        }
        expediteIfWaiting(connection)
        return true
    }

    /// Open auth, or a bearer token that allows publishing on `channel`, decided as
    /// `authorize` decides for the general path. A refusal is not answered here: the
    /// general path reads the request again and answers it (401/403, with its log line).
    /// (A bearer token's grant is `authenticate`'s, and with a token `authorize` is that and
    /// `permits` on each channel.)
    private func mayPublish(_ r: PlainRequestBytes, on channel: String) -> Bool {
        if auth.isOpen { return true }
        guard let value = r.authorization, !value.isEmpty else { return false }
        let now = Authorizer.nowSeconds()
        let grant = laneTokens.grant(for: value, second: now) {
            guard let token = Authorizer.bearer(bytes: value) else { return nil }
            return try? auth.authenticate(token: token, nowSeconds: now)
        }
        guard let grant, grant.kind == .token else { return false }
        return grant.permits(.publish, channel: channel)
    }

    /// The answer to a publish taken by the fast lane (`answer` for a Request: no CORS
    /// headers are due, as no Origin was sent).
    private func answerPlain(_ seq: UInt64, _ receivedNs: UInt64, _ connection: Connection, _ tally: PublishTally) {
        let seconds = Double(MonotonicClock.nowNs() &- receivedNs) / 1e9
        if let failure = tally.failure {
            let response = failure.httpError.response
            metrics.countResponse(.publish, status: response.status, seconds: seconds)
            return connection.respond(sequence: seq, response)
        }
        tally.withAnswerBytes { body in
            metrics.countResponse(.publish, status: 200, seconds: seconds)
            connection.respondOK(sequence: seq, json: body)
        }
    }

    /// The channel of `/v1/channels/{ch}/events` (no query, no escape, a valid name), or
    /// nil (the general path routes it, and gives any error).
    func plainPublishChannel(_ url: UnsafeRawBufferPointer) -> String? {
        let u = url.bindMemory(to: UInt8.self)
        // Names.isValidChannel refuses an empty name and one holding "/" or "%".
        guard !u.contains(0x3F), let (kind, raw) = Route.channelPath(u), kind == .events,
              Names.isValidChannel(raw) else { return nil }
        return laneChannelNames.name(raw)
    }

    /// The event of a request with only the headers a plain client sends and a JSON or
    /// text body the quick readers take, or nil.
    static func plainDrafts(_ r: PlainRequestBytes, limits: PublishLimits) -> [EventDraft]? {
        guard r.onlyCommonHeaders, let type = r.contentType else { return nil }
        switch PublishBody.MediaType(contentType: type.bindMemory(to: UInt8.self)) {
        case .json: return PublishBody.quickJSON(r.body, limits: limits)
        case .plainText: return PublishBody.quickPlainText(r.body, limits: limits)
        default: return nil
        }
    }
}
