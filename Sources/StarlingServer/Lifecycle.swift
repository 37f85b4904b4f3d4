// A stream's life around its tokens (SPEC §4): Stop (`POST /v1/channels/{ch}/cancel`),
// and what an open streaming publish needs to learn it: the channel's end reaches it
// through the broker's fan-out exactly as it reaches subscribers (the store's watch, on
// every loop and every node), and it holds its channels' leases while it is open.
import StarlingAuth
import StarlingCore
import StarlingHTTP
import StarlingStore

extension Broker {
    /// Stop: ends the channel with a final `starling.cancelled` event.
    func cancel(_ channel: String, _ grant: Grant, _ request: Request, _ connection: Connection) {
        let reason: String?
        do { reason = try PublishBody.cancelReason(request.body) } catch let e as BrokerError {
            return respond(request, connection, e)
        } catch {
            return respond(request, connection, HTTPError(500, "internal", "\(error)").response)
        }
        store.cancel(channel, data: ChannelState.cancelledData(reason: reason)) { [self] result in
            switch result {
            case .failure(let e):
                respond(request, connection, e)
            case .success(let event):
                metrics.cancels += 1
                logger.info("channel \(channel) cancelled (Stop)\(grant.subject.map { " by \($0)" } ?? "")")
                respond(request, connection, .json(200, "{\"id\":\"\(event.id)\",\"state\":\"cancelled\"}"))
            }
        }
    }

    /// A streaming publish to `channel` opened here: it hears of the channel's end.
    func watchEnd(of channel: String, for stream: IngestStream) {
        if channels[channel] == nil, ingests[channel] == nil { store.watch(channel) }
        ingests[channel, default: []].append(stream)
    }

    func unwatchEnd(of channel: String, for stream: IngestStream) {
        guard var list = ingests[channel], let at = list.firstIndex(where: { $0 === stream }) else { return }
        list.remove(at: at)
        if !list.isEmpty { ingests[channel] = list; return }
        ingests[channel] = nil
        if channels[channel] == nil { store.unwatch(channel) }
    }

    /// On every wheel tick (~100 ms): open streaming publishes renew their leases when due.
    func holdLeases(nowMs: UInt64) {
        for stream in leaseHolders.values { stream.holdLeaseIfDue(nowMs: nowMs) }
    }
}
