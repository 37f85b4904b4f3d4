// POST /v1/channels/{ch}/events: parse the body by media type, store it as one batch,
// answer {"count","first","last"}.
import StarlingCore
import StarlingHTTP
import StarlingStore

extension Broker {
    func publish(_ channel: String, _ request: Request, _ connection: Connection) {
        let limits = PublishLimits(maxEventBytes: config.maxEventBytes)
        let drafts: [EventDraft]
        do {
            guard let type = PublishBody.MediaType(contentType: request.header("content-type")) else {
                throw BrokerError(.unsupportedMedia, "unsupported_media_type",
                    "send application/json, application/x-ndjson, text/event-stream or text/plain (got \(request.header("content-type") ?? "none"))")
            }
            switch type {
            case .json: drafts = try PublishBody.parseJSON(request.body, limits: limits, channelKey: false)
            case .ndjson: drafts = try PublishBody.parseNDJSON(request.body, limits: limits, channelKey: false)
            case .eventStream: drafts = try PublishBody.parseEventStream(request.body, limits: limits)
            case .plainText:
                let event = request.queryValue("event")
                let final = request.queryValue("final") == "true"
                drafts = [try PublishBody.parsePlainText(request.body, name: event, conflate: request.queryValue("conflate"),
                                                         final: final, limits: limits)]
            }
        } catch let e as BrokerError {
            return respond(request, connection, e)
        } catch {
            return respond(request, connection, HTTPError(500, "internal", "\(error)").response)
        }
        store.append(drafts, to: channel) { [self] result in
            switch result {
            case .failure(let e):
                respond(request, connection, e)
            case .success(let r):
                metrics.publishRequests += 1
                metrics.eventsPublished += r.stored.count
                respond(request, connection, .json(200, Self.publishAnswer(r)))
            }
        }
    }

    static func publishAnswer(_ r: AppendResult) -> String {
        let first = r.stored.first.map { "\"\($0.id)\"" } ?? "null"
        let last = r.stored.last.map { "\"\($0.id)\"" } ?? "null"
        let dup = r.duplicates > 0 ? ",\"duplicates\":\(r.duplicates)" : ""
        return "{\"count\":\(r.stored.count),\"first\":\(first),\"last\":\(last)\(dup)}"
    }
}
