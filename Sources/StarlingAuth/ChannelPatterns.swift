// ChannelPatterns: the channel part of a claim — exact names and `prefix*` patterns.
// A pattern is a literal prefix followed by one `*` at the very end; `*` alone admits
// every channel. `*` is not a channel character, so no name is mistaken for a pattern.
import StarlingCore

public struct ChannelPatterns: Equatable, Sendable {
    private var exact: Set<String> = []
    private var prefixes: [String] = []
    private var all = false

    public static let none = ChannelPatterns()
    public static let everything: ChannelPatterns = { var p = ChannelPatterns(); p.all = true; return p }()

    public init() {}

    /// Nil when one pattern is malformed (a `*` not at the end, a character outside channel names).
    public init?(_ patterns: [String]) {
        for p in patterns {
            guard ChannelPatterns.isValid(p) else { return nil }
            if p == "*" { all = true } else if p.hasSuffix("*") { prefixes.append(String(p.dropLast())) } else { exact.insert(p) }
        }
    }

    public var isEmpty: Bool { !all && exact.isEmpty && prefixes.isEmpty }

    public func admits(_ channel: String) -> Bool {
        if all || exact.contains(channel) { return true }
        return prefixes.contains { channel.hasPrefix($0) }
    }

    public static func isValid(_ pattern: String) -> Bool {
        if pattern == "*" { return true }
        if pattern.hasSuffix("*") { return Names.isValidChannel(pattern.dropLast()) }
        return Names.isValidChannel(pattern)
    }
}

extension ChannelPatterns {
    mutating func formUnion(_ other: ChannelPatterns) {
        all = all || other.all
        exact.formUnion(other.exact)
        prefixes += other.prefixes
    }
}
