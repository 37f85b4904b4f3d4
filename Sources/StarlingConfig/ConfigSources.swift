// The three sources of a configuration, read into one shape: a value's text (or list of
// texts) and where it came from. A file is read whole and refused at its first unknown
// key; so is any STARLING_* variable that names no setting. Later sources win per key:
// file < environment < flags (a list is replaced whole, not appended to).
import Foundation
import Yams

/// A setting's text before its kind reads it.
public enum RawValue: Equatable, Sendable {
    case scalar(String)
    case list([String])

    var items: [String] {
        switch self {
        case .scalar(let s): return [s]
        case .list(let l): return l
        }
    }
}

/// Where a value came from; every error names it.
public enum ConfigSource: Equatable, Sendable, CustomStringConvertible {
    case defaultValue
    case file(String)
    case environment(String)
    case flag(String)

    public var description: String {
        switch self {
        case .defaultValue: return "default"
        case .file(let path): return "file \(path)"
        case .environment(let name): return "environment \(name)"
        case .flag(let flag): return "flag \(flag)"
        }
    }
}

/// A configuration the broker must not start with. `key` names the setting (or the
/// unknown key) so the operator knows which line to fix.
public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    public var key: String
    public var message: String
    public init(key: String, _ message: String) { self.key = key; self.message = message }
    public var description: String { "\(key): \(message)" }
}

/// One source's values.
public struct ConfigLayer: Sendable {
    public var values: [SettingKey: (RawValue, ConfigSource)] = [:]
    public init() {}

    public mutating func set(_ key: SettingKey, _ value: RawValue, from source: ConfigSource) {
        values[key] = (value, source)
    }

    // MARK: file

    /// Reads a TOML or YAML file (by its extension).
    public static func file(at path: String) throws(ConfigError) -> ConfigLayer {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(key: "config", "cannot read \(path)")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw ConfigError(key: "config", "\(path) is not UTF-8 text") }
        let lower = path.lowercased()
        if lower.hasSuffix(".toml") { return try toml(text, path: path) }
        if lower.hasSuffix(".yaml") || lower.hasSuffix(".yml") { return try yaml(text, path: path) }
        throw ConfigError(key: "config", "\(path): name the file .toml, .yaml or .yml so its format is known")
    }

    static func toml(_ text: String, path: String) throws(ConfigError) -> ConfigLayer {
        let entries: [TOMLReader.Entry]
        do { entries = try TOMLReader.read(text) } catch {
            throw ConfigError(key: "config", "\(path):\(error.line): \(error.message)")
        }
        var layer = ConfigLayer()
        for e in entries {
            let key = try fileKey(e.key, where: "\(path):\(e.line)")
            layer.set(key, e.value, from: .file(path))
        }
        return layer
    }

    static func yaml(_ text: String, path: String) throws(ConfigError) -> ConfigLayer {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw ConfigError(key: "config", "\(path): not YAML: \(error)")
        }
        guard let root else { return ConfigLayer() }  // an empty file sets nothing
        guard let mapping = root.mapping else { throw ConfigError(key: "config", "\(path): the top level must be a mapping of settings") }
        var layer = ConfigLayer()
        for (k, v) in mapping {
            let line = k.mark.map { ":\($0.line)" } ?? ""
            guard let name = k.scalar?.string else { throw ConfigError(key: "config", "\(path)\(line): a key is not text") }
            let key = try fileKey(name, where: "\(path)\(line)")
            switch v {
            case .scalar(let s):
                guard !(s.style == .plain && ["", "~", "null", "Null", "NULL"].contains(s.string)) else {
                    throw ConfigError(key: key.fileKey, "has no value (\(path)\(line))")
                }
                layer.set(key, .scalar(s.string), from: .file(path))
            case .sequence(let seq):
                var items: [String] = []
                for item in seq {
                    guard let s = item.scalar?.string else {
                        throw ConfigError(key: key.fileKey, "a list of plain values is expected (\(path)\(line))")
                    }
                    items.append(s)
                }
                layer.set(key, .list(items), from: .file(path))
            case .mapping:
                throw ConfigError(key: key.fileKey, "nested settings are not used: Starling's settings are top-level keys (\(path)\(line))")
            }
        }
        return layer
    }

    private static func fileKey(_ name: String, where place: String) throws(ConfigError) -> SettingKey {
        guard let key = SettingKey.fromFileKey(name), key.allowedInFile else {
            throw ConfigError(key: name, "unknown setting in \(place)\(suggestion(for: name, among: SettingKey.allCases.filter(\.allowedInFile).map(\.fileKey)))")
        }
        return key
    }

    // MARK: environment

    /// Every STARLING_* variable must name a setting.
    public static func environment(_ env: [String: String]) throws(ConfigError) -> ConfigLayer {
        var layer = ConfigLayer()
        for (name, value) in env.sorted(by: { $0.key < $1.key }) where name.hasPrefix("STARLING_") {
            guard let key = SettingKey.fromEnvironment(name), name == key.environmentName else {
                throw ConfigError(key: name, "unknown environment variable\(suggestion(for: name, among: SettingKey.allCases.map(\.environmentName)))")
            }
            let raw: RawValue
            switch key.kind {
            case .list where key != .jwtSecret, .pathList:
                // Comma-separated; a secret is one whole value (it may hold a comma).
                raw = .list(value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
            case .list:
                raw = .list([value])
            default:
                raw = .scalar(value)
            }
            layer.set(key, raw, from: .environment(name))
        }
        return layer
    }

    /// " (did you mean X?)" for a near miss: a different separator or case, or one or two
    /// letters off.
    static func suggestion(for name: String, among known: [String]) -> String {
        let norm = { (s: String) in s.lowercased().replacingOccurrences(of: "-", with: "_") }
        if let same = known.first(where: { norm($0) == norm(name) }) { return " (did you mean \(same)?)" }
        let close = known.map { ($0, editDistance(norm($0), norm(name))) }.filter { $0.1 <= 2 }.min { $0.1 < $1.1 }
        return close.map { " (did you mean \($0.0)?)" } ?? ""
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var row = Array(0...b.count)
        for i in 1...a.count {
            var prev = row[0]
            row[0] = i
            for j in 1...b.count {
                let cur = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
                prev = cur
            }
        }
        return row[b.count]
    }
}
