// ChannelState: where a channel is in its life (SPEC §4). A channel is open until its
// final event; the final event's name says how it ended: a publisher's own final event,
// a Stop (`starling.cancelled`) or a lease that ran out (`starling.abandoned`). Both
// engines derive the state from that one event, so it cannot disagree with the stream.

public enum ChannelState: String, Equatable, Sendable {
    case open, final, cancelled, abandoned

    public static let cancelledEvent = "starling.cancelled"
    public static let abandonedEvent = "starling.abandoned"
    /// The data of the broker's `starling.abandoned` event.
    public static let abandonedData = "{\"reason\":\"lease_expired\"}"

    /// The state a final event named `name` leaves its channel in.
    public init(finalEventNamed name: String) {
        switch name {
        case ChannelState.cancelledEvent: self = .cancelled
        case ChannelState.abandonedEvent: self = .abandoned
        default: self = .final
        }
    }

    /// The data of the broker's `starling.cancelled` event: `{"reason":…}` (null when none was given).
    public static func cancelledData(reason: String?) -> String {
        "{\"reason\":\(reason.map(JSONWriter.quoted) ?? "null")}"
    }

    /// The 409 a publish (or a Stop) to a channel in this state gets.
    public func refusal(channel: String) -> BrokerError {
        switch self {
        case .open:
            preconditionFailure("an open channel refuses nothing for its state")
        case .final:
            return BrokerError(.conflict, "channel_final", "channel \(channel) is final and accepts no more events")
        case .cancelled:
            return BrokerError(.conflict, "channel_cancelled", "channel \(channel) was cancelled (Stop) and accepts no more events")
        case .abandoned:
            return BrokerError(.conflict, "channel_abandoned",
                               "channel \(channel) was abandoned (its lease ran out) and accepts no more events")
        }
    }
}
