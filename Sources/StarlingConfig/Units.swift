// Sizes and durations as operators write them: `1MiB`, `512KiB`, `64kB`, `1048576`;
// `500ms`, `15s`, `10m`, `1h`, `2.5` (seconds). Nil for anything else, so the caller can
// say which setting was wrong.
import Foundation

public enum Units {
    /// Bytes; binary units are powers of 1024, decimal ones of 1000.
    public static func bytes(_ text: String) -> Int? {
        let t = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40),
                                      ("kB", 1_000), ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("B", 1)]
        for (suffix, factor) in units where t.hasSuffix(suffix) {
            let number = t.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)
            guard let n = Double(number), n >= 0, n * Double(factor) < Double(Int.max) else { return nil }
            let v = n * Double(factor)
            guard v == v.rounded() else { return nil }
            return Int(v)
        }
        return Int(t.filter { $0 != "_" })
    }

    /// Seconds; a bare number is seconds.
    public static func seconds(_ text: String) -> Double? {
        let t = text.trimmingCharacters(in: .whitespaces)
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        for (suffix, factor) in units where t.hasSuffix(suffix) {
            let number = t.dropLast(suffix.count)
            // "ms" ends in "s": only a number may stand before the unit.
            guard let n = Double(number), n.isFinite else { continue }
            return n * factor
        }
        guard let n = Double(t), n.isFinite else { return nil }
        return n
    }

    public static func bool(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: return nil
        }
    }
}
