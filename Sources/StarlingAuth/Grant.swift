// Grant: what one verified token (or an anonymous request) may do, and until when.
// The broker keeps it with a subscription or a streaming publish and asks it per channel.
import StarlingCore

/// A class: a grant is handed along with every publish (and kept by streams), and as a
/// struct of three pattern sets each copy retained six buffers.
public final class Grant: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        case open        // no keys configured: everything is allowed
        case anonymous   // no token: only public-subscribe channels
        case token       // a verified token
    }

    public let kind: Kind
    /// Unix seconds after which the grant is void (the token's `exp` plus the leeway);
    /// nil when it never expires (open mode, anonymous, a token without `exp`).
    public let expiresAt: Int?
    /// The token's `sub`, for logs.
    public let subject: String?
    let publish: ChannelPatterns
    let subscribe: ChannelPatterns
    /// Channels the token may Stop, beside those it may publish to.
    let cancel: ChannelPatterns

    init(kind: Kind, expiresAt: Int?, subject: String?, publish: ChannelPatterns, subscribe: ChannelPatterns,
         cancel: ChannelPatterns = .none) {
        self.kind = kind; self.expiresAt = expiresAt; self.subject = subject
        self.publish = publish; self.subscribe = subscribe; self.cancel = cancel
    }

    public static func == (a: Grant, b: Grant) -> Bool {
        a.kind == b.kind && a.expiresAt == b.expiresAt && a.subject == b.subject
            && a.publish == b.publish && a.subscribe == b.subscribe && a.cancel == b.cancel
    }

    public func permits(_ action: AuthAction, channel: String) -> Bool {
        switch action {
        case .publish: return publish.admits(channel)
        case .subscribe: return subscribe.admits(channel)
        case .cancel: return cancel.admits(channel) || publish.admits(channel)
        }
    }

    public func isExpired(nowSeconds: Int) -> Bool {
        if let expiresAt { return nowSeconds >= expiresAt }
        return false
    }

    /// Every channel must be allowed. Anonymous requests outside the public channels get
    /// 401 (a token would help); token holders outside their claims get 403.
    public func check(_ action: AuthAction, channels: [String]) throws(BrokerError) {
        for channel in channels where !permits(action, channel: channel) {
            if kind == .anonymous {
                throw BrokerError(.unauthorized, "unauthorized", "a token is required to \(action) on channel \(channel)")
            }
            throw BrokerError(.forbidden, "forbidden", "the token does not allow \(action) on channel \(channel)")
        }
    }
}
